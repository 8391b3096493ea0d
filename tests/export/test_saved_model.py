"""Versioned, atomic SavedModel export, loadable by TensorFlow alone."""

import subprocess
import sys

import numpy as np
import pytest

import kvision.export.saved_model as saved_model
from kvision.errors import ExportError
from kvision.export import export_saved_model
from tests.helpers import quadrant_images, small_cnn


@pytest.fixture(scope="module")
def model():
    return small_cnn()


def test_versions_are_integers_and_never_overwritten(model, tmp_path):
    first = export_saved_model(model, tmp_path, "quadrants", version=1)
    second = export_saved_model(model, tmp_path, "quadrants")
    assert first.name == "1" and int(second.name) > 1_600_000_000, "default version is Unix time"
    with pytest.raises(ExportError, match="Version 1 .* already exists.*Received: version=1"):
        export_saved_model(model, tmp_path, "quadrants", version=1)
    with pytest.raises(ExportError, match="non-negative integer.*Received: version='2'"):
        export_saved_model(model, tmp_path, "quadrants", version="2")
    assert sorted(p.name for p in (tmp_path / "quadrants").iterdir()) == sorted(["1", second.name])


def test_a_failed_export_leaves_no_version_behind(model, tmp_path, monkeypatch):
    class Broken:
        def write_out(self, path, verbose=False):
            (saved_model.Path(path) / "variables").mkdir(parents=True)
            raise OSError("disk full")

    monkeypatch.setattr(saved_model, "_build_archive", lambda model: Broken())
    with pytest.raises(OSError, match="disk full"):
        export_saved_model(model, tmp_path, "quadrants", version=7)
    assert list((tmp_path / "quadrants").iterdir()) == [], "no version and no staging directory"


def test_serving_default_runs_in_a_process_without_kvision(model, tmp_path):
    path = export_saved_model(model, tmp_path, "quadrants", version=3)
    images, _ = quadrant_images(5)
    np.save(tmp_path / "images.npy", images)
    script = (
        "import sys, numpy as np, tensorflow as tf\n"
        "loaded = tf.saved_model.load(sys.argv[1])\n"
        "fn = loaded.signatures['serving_default']\n"
        "out = fn(image=tf.constant(np.load(sys.argv[2]).astype('float32')))\n"
        "np.save(sys.argv[3], out['logits'].numpy())\n"
        "assert 'kvision' not in sys.modules\n"
    )
    subprocess.run(
        [sys.executable, "-c", script, str(path), str(tmp_path / "images.npy"), str(tmp_path / "out.npy")],
        check=True, timeout=120, cwd=tmp_path,
    )
    expected = model.predict(images.astype("float32"), verbose=0)
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected, atol=1e-5)
