"""Exporting a captioner: encoded images in, captions out, decoded in the graph; verified in a fresh process."""

import json

import numpy as np
import pytest
import tensorflow as tf

from kvision.data.text import WordPieceVocabulary
from kvision.export import export_captioner
from kvision.models import build_show_attend_tell
from kvision.models.decoding import Captioner


@pytest.fixture(scope="module")
def captioner():
    tf.keras.utils.set_random_seed(0)
    vocab = WordPieceVocabulary.from_symbols(["a bag above a top to the left of"], max_length=8)
    model = build_show_attend_tell((32, 32, 1), vocab.size, units=16, embedding_dim=8, feature_dim=16, attention_units=16,
                                   backbone_options=dict(filters=(8, 8), convs_per_block=1, dense_units=8))
    return Captioner(model, vocab, beam_width=2)


@pytest.mark.slow
def test_exported_captioner_answers_png_and_jpeg_in_a_fresh_process_as_in_process(captioner, tmp_path):
    """The exporter's own fresh process (TensorFlow and TensorFlow Text only) is the user's: its figures are asserted.

    It sends the images as PNG and the exporter's robustness images: a JPEG at
    the model's size and a larger PNG in the other colour mode (RGB here).
    """
    images = np.random.default_rng(1).integers(0, 256, (2, 32, 32, 1), dtype=np.uint8)
    result = export_captioner(captioner, tmp_path / "models", "captions", images, version=3,
                              metrics={"bleu_4": 0.5}, min_bleu_4=0.4)
    assert result.blessed and result.path == tmp_path / "models" / "captions" / "3"
    evaluation = json.loads((result.path / "evaluation.json").read_text())
    assert evaluation["signatures"]["serving_default"]["inputs"] == {"image_bytes": {"dtype": "string", "shape": [-1]}}
    assert evaluation["signatures"]["caption_beams"]["outputs"]["captions"]["shape"] == [-1, 2]
    checks = {c["name"]: c for c in evaluation["checks"]}
    assert all(check["passed"] for check in checks.values()), checks
    assert checks["test BLEU-4"]["value"] == 0.5
    assert evaluation["parity"]["examples"] == 4, "2 PNGs, the JPEG and the larger RGB PNG"
    assert checks["SavedModel captions differing from in-process decoding"]["value"] == 0.0
    assert checks["SavedModel max abs Δscore"]["value"] <= 1e-4
    assert checks["kvision or TF Serving modules in the server process"]["value"] == 0.0
    assert checks["signatures answering warmup with every output"]["value"] == len(evaluation["signatures"])
