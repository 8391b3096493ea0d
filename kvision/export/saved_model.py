"""Versioned, atomic SavedModel export for TF Serving.

TF Serving watches ``<base>/<name>/`` and loads any integer-named version
directory it finds, so a version must appear complete or not at all: it is
written to a hidden temporary sibling and renamed into place (an atomic rename
on one filesystem). An existing version is never overwritten.
"""

import os
import shutil
import time
from pathlib import Path

import keras
import tensorflow as tf

from kvision.errors import ExportError


def next_version(model_dir, version=None):
    """``version`` checked to be a free non-negative integer; default: Unix time."""
    if version is None:
        version = int(time.time())
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise ExportError(f"A model version must be a non-negative integer. Received: version={version!r}")
    if (Path(model_dir) / str(version)).exists():
        raise ExportError(
            f"Version {version} of {model_dir} already exists and is never overwritten; "
            f"pick another version. Received: version={version}"
        )
    return version


def _build_archive(model):
    """An ``ExportArchive`` whose ``serving_default`` maps raw float32 images to logits."""
    archive = keras.export.ExportArchive()
    archive.track(model)
    spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name="image")
    archive.add_endpoint("serving_default", lambda image: {"logits": model(image, training=False)}, [spec])
    return archive


def export_saved_model(model, base_dir, name, *, version=None):
    """Write ``model`` to ``base_dir/name/<version>/`` atomically; return that path.

    The SavedModel's ``serving_default`` signature takes ``image``: float32
    ``[N, H, W, C]`` in the raw 0..255 range (the model normalises inside) and
    returns ``logits``: float32 ``[N, num_classes]``.
    """
    model_dir = Path(base_dir) / name
    version = next_version(model_dir, version)
    model_dir.mkdir(parents=True, exist_ok=True)
    staging = model_dir / f".tmp-{version}-{os.getpid()}"
    final = model_dir / str(version)
    try:
        _build_archive(model).write_out(str(staging), verbose=False)
        try:
            os.rename(staging, final)
        except OSError as err:  # the version appeared meanwhile (another exporter)
            raise ExportError(
                f"Could not publish the export as a new version directory. Received: {final} ({err})"
            ) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final
