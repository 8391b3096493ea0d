"""Helpers shared by the export tests: one way to export the quadrant classifier, a serving check that fails at once."""

import importlib.util

from kvision.export import export_classifier, verify
from kvision.export.onnx_export import ONNX_PACKAGES

CLASS_NAMES = ["top-left", "top-right", "bottom-left", "bottom-right"]
HAVE_ONNX = all(importlib.util.find_spec(name) for name in ONNX_PACKAGES)


def export(model, quadrants, base, **options):
    """``export_classifier`` of ``model`` as ``quadrants`` on the quadrant evaluation split, no TFLite file unless asked."""
    (train_images, _), (eval_images, eval_labels) = quadrants
    options = {"tflite": (), "verbose": False, **options}
    return export_classifier(
        model, base, "quadrants", class_names=CLASS_NAMES, eval_images=eval_images, eval_labels=eval_labels,
        representative_images=train_images[:200], **options,
    )


def crash_serving_check(monkeypatch, folder, message="tensorflow.errors.NotFoundError: Op type not registered"):
    """Make the exporter's fresh-process check a script that exits with ``message`` before importing TensorFlow.

    For the tests of a failure the serving check is not part of: the export
    still writes and checks everything else, without a TensorFlow process.
    """
    script = folder / "crash.py"
    script.write_text(f"import sys\nsys.exit({message!r})\n")
    monkeypatch.setattr(verify, "SERVING_CHECK", script)
