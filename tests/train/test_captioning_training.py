"""fit_captioner on one device and on two: the same losses (the attention loss is a per-replica layer loss)."""

import numpy as np
import pytest

from kvision.data.captions import CaptionSet
from kvision.data.text import WordPieceVocabulary
from kvision.models import build
from kvision.train import fit_captioner
from tests.helpers import run_on_two_cpus

WORDS = ["a bag", "a top above a bag", "a coat to the left of a top"]


def fit(run_dir, strategy=None):
    images = np.random.default_rng(0).integers(0, 256, (16, 16, 16, 1)).astype(np.uint8)
    captions = CaptionSet(images, [str(i) for i in range(16)], [(str(i), WORDS[i % 3]) for i in range(16)])
    vocab = WordPieceVocabulary.from_symbols(WORDS, max_length=10)
    options = dict(units=16, dropout=0.0, backbone_options=dict(filters=(8, 8), dense_units=8, dropout=0.0, dense_dropout=0.0))
    return fit_captioner(lambda: build("show_attend_tell", (16, 16, 1), vocab.size, **options), captions, captions, vocab,
                         run_dir=run_dir, epochs=2, batch_size=8, seed=0, strategy=strategy, verbose=0)


@pytest.mark.slow
def test_two_replicas_follow_one_device():
    runs = run_on_two_cpus("""
import tempfile
from kvision.train import get_strategy
from tests.train.test_captioning_training import fit
runs = [fit(tempfile.mkdtemp(), strategy=get_strategy(devices)).history for devices in (["/cpu:0"], ["/cpu:0", "/cpu:1"])]
print(json.dumps({key: [run[key] for run in runs] for key in ("loss", "val_loss")}))
""")
    for key in ("loss", "val_loss"):
        one, two = runs[key]
        np.testing.assert_allclose(two, one, rtol=1e-3)
