"""Exporting a captioner: encoded images in, captions out, decoded in the graph; verified in a fresh process."""

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from kvision.data.text import WordPieceVocabulary
from kvision.export import export_captioner
from kvision.models import build_show_attend_tell
from kvision.models.decoding import Captioner

LOAD_AND_CAPTION = """
import json, sys
import tensorflow as tf
import tensorflow_text  # registers the tokenizer ops; kvision is not imported
loaded = tf.saved_model.load(sys.argv[1])
files = [tf.io.read_file(path) for path in sys.argv[2:]]
out = loaded.signatures["serving_default"](image_bytes=tf.stack(files))
print(json.dumps({"captions": [c.decode() for c in out["captions"].numpy()], "scores": out["scores"].numpy().tolist(),
                  "kvision": "kvision" in sys.modules}))
"""


@pytest.fixture(scope="module")
def captioner():
    tf.keras.utils.set_random_seed(0)
    vocab = WordPieceVocabulary.from_symbols(["a bag above a top to the left of"], max_length=8)
    model = build_show_attend_tell((32, 32, 1), vocab.size, units=16, embedding_dim=8, feature_dim=16, attention_units=16,
                                   backbone_options=dict(filters=(8, 8), convs_per_block=1, dense_units=8))
    return Captioner(model, vocab, beam_width=2)


@pytest.mark.slow
def test_exported_captioner_round_trips_png_and_jpeg_in_a_fresh_process(captioner, tmp_path):
    images = np.random.default_rng(1).integers(0, 256, (6, 32, 32, 1), dtype=np.uint8)
    result = export_captioner(captioner, tmp_path / "models", "captions", images, version=3,
                              metrics={"bleu_4": 0.5}, min_bleu_4=0.4)
    assert result.blessed and result.path == tmp_path / "models" / "captions" / "3"
    evaluation = json.loads((result.path / "evaluation.json").read_text())
    assert evaluation["signatures"]["serving_default"]["inputs"] == {"image_bytes": {"dtype": "string", "shape": [-1]}}
    assert evaluation["signatures"]["caption_beams"]["outputs"]["captions"]["shape"] == [-1, 2]
    assert {c["name"]: c["passed"] for c in evaluation["checks"]}["test BLEU-4"] is True
    # Called as a user would: files on disk, a process with TensorFlow only.
    paths = [tmp_path / "0.png", tmp_path / "1.jpg", tmp_path / "big.png"]
    paths[0].write_bytes(tf.io.encode_png(images[0]).numpy())
    paths[1].write_bytes(tf.io.encode_jpeg(images[1]).numpy())
    paths[2].write_bytes(tf.io.encode_png(np.repeat(np.kron(images[2], np.ones((2, 2, 1), np.uint8)), 3, -1)).numpy())
    done = subprocess.run([sys.executable, "-c", LOAD_AND_CAPTION, str(result.path), *map(str, paths)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    served = json.loads(done.stdout.strip().splitlines()[-1])
    expected = captioner.caption(tf.constant([p.read_bytes() for p in paths]))
    assert served["captions"] == [c.decode() for c in expected["captions"].numpy()]
    np.testing.assert_allclose(served["scores"], expected["scores"].numpy(), atol=1e-4)
    assert served["kvision"] is False
