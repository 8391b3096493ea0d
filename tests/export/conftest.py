"""A small classifier trained well enough that its decisions are stable under quantisation, and its exports.

The exports are session fixtures read by several modules (test_push,
test_onnx, test_rest): each export (a SavedModel, TFLite and ONNX
conversions, a fresh TensorFlow process) is made once per pytest-xdist
worker that runs one of those files.
"""

import keras
import numpy as np
import pytest

import kvision.export.exporters as exporters
from kvision.data.decode import ImageLimits
from kvision.export.onnx_export import write_classifier_onnx
from kvision.export.tflite import convert
from tests.export.helpers import HAVE_ONNX, export
from tests.helpers import quadrant_images, small_cnn

LIMITS = ImageLimits(max_pixels=1000, max_bytes=2000, max_batch=300)


@pytest.fixture(scope="session")
def quadrants():
    """``(train_images, train_labels), (eval_images, eval_labels)`` of 16×16×1 quadrant images."""
    images, labels = quadrant_images(700, seed=3)
    return (images[:500], labels[:500]), (images[500:], labels[500:])


@pytest.fixture(scope="session")
def trained_cnn(quadrants):
    (images, labels), (eval_images, eval_labels) = quadrants
    keras.utils.set_random_seed(0)
    model = small_cnn()
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(images.astype(np.float32), labels, epochs=8, batch_size=32, verbose=0)
    accuracy = model.evaluate(eval_images.astype(np.float32), eval_labels, verbose=0)[1]
    assert accuracy >= 0.98, "the fixture must be a confident classifier"
    return model


@pytest.fixture(scope="session")
def blessed(trained_cnn, quadrants, tmp_path_factory):
    """``(base, result)``: version 3 of ``quadrants``, blessed, with TFLite float32 and int8 files, ``model.onnx``
    (when ONNX is installed), metrics, provenance and image budgets. Its tests only read it."""
    base = tmp_path_factory.mktemp("push")
    result = export(trained_cnn, quadrants, base, version=3, tflite=("float32", "int8"), onnx=HAVE_ONNX,
                    bless_min_accuracy=0.95, metrics={"top5_accuracy": 1.0}, training_command="python train.py",
                    dataset={"name": "quadrants", "origin": "tests", "fingerprint": "sha256:x"}, limits=LIMITS)
    return base, result


@pytest.fixture(scope="session")
def wrong_conversions(trained_cnn, quadrants, tmp_path_factory):
    """An export whose TFLite files and ``model.onnx`` (when ONNX is installed) are of another model.

    The other model has the same architecture and other weights: what a
    wrong conversion looks like. The SavedModel is right.
    """
    other = small_cnn()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(exporters, "convert", lambda model, variant, **kw: convert(other, variant, **kw))
        patch.setattr(exporters, "write_classifier_onnx", lambda model, path: write_classifier_onnx(other, path))
        return export(trained_cnn, quadrants, tmp_path_factory.mktemp("wrong"), version=1, tflite=("float32", "int8"),
                      onnx=HAVE_ONNX)
