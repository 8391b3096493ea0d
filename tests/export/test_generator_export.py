"""GAN generators export through the same verified, versioned path as classifiers."""

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from kvision.errors import ExportError
from kvision.export import export_generator
from kvision.models import build


@pytest.fixture(scope="module")
def conditional(tmp_path_factory):
    generator = build("dcgan_generator", (16, 16, 1), 4, latent_dim=8, filters=32)
    base = tmp_path_factory.mktemp("generator")
    result = export_generator(generator, base, "gan", tflite=("float32", "float16"), version=2, verbose=False)
    return generator, result


def expected_images(generator, noise, labels=None):
    images = generator.predict([noise] if labels is None else [noise, labels], verbose=0)
    return np.clip(np.round((images + 1) * 127.5), 0, 255).astype(np.uint8)


def test_a_conditional_generator_is_blessed_with_its_documented_signature(conditional):
    _, result = conditional
    assert result.blessed and result.pushed and result.path.name == "2"
    evaluation = json.loads((result.path / "evaluation.json").read_text())
    assert evaluation["signatures"]["serving_default"] == {
        "inputs": {"noise": {"dtype": "float32", "shape": [-1, 8]}, "label": {"dtype": "int32", "shape": [-1]}},
        "outputs": {"images": {"dtype": "uint8", "shape": [-1, 16, 16, 1]}},
    }
    assert evaluation["parity"]["tflite"]["float32"]["max_abs_pixel_diff"] <= 1
    assert (result.path / "tflite" / "gan_float16.tflite").exists()
    assert (result.path / "assets.extra" / "tf_serving_warmup_requests").exists()


@pytest.mark.slow
def test_the_export_serves_in_a_process_without_kvision(conditional, tmp_path):
    generator, result = conditional
    noise = np.random.default_rng(0).standard_normal((6, 8)).astype(np.float32)
    labels = np.array([0, 1, 2, 3, 0, 1], np.int32)
    np.save(tmp_path / "noise.npy", noise)
    np.save(tmp_path / "labels.npy", labels)
    script = (
        "import sys, numpy as np, tensorflow as tf\n"
        "fn = tf.saved_model.load(sys.argv[1]).signatures['serving_default']\n"
        "out = fn(noise=tf.constant(np.load(sys.argv[2])), label=tf.constant(np.load(sys.argv[3])))['images']\n"
        "assert out.dtype == tf.uint8\n"
        "np.save(sys.argv[4], out.numpy())\n"
        "assert not any(m.startswith(('kvision', 'tests')) for m in sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", script, str(result.path), str(tmp_path / "noise.npy"),
                    str(tmp_path / "labels.npy"), str(tmp_path / "out.npy")], check=True, timeout=120, cwd=tmp_path)
    served = np.load(tmp_path / "out.npy").astype(int)
    assert np.abs(served - expected_images(generator, noise, labels)).max() <= 1


def test_bad_labels_and_dtypes_are_invalid_argument_errors(conditional):
    _, result = conditional
    fn = tf.saved_model.load(str(result.path)).signatures["serving_default"]
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"label must be a class id in \[0, 4\)"):
        fn(noise=tf.zeros((1, 8)), label=tf.constant([4]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="expected to be a float tensor but is a double tensor"):
        fn(noise=tf.zeros((1, 8), tf.float64), label=tf.constant([1]))


def test_an_unconditional_generator_takes_noise_only(tmp_path):
    generator = build("dcgan_generator", (16, 16, 3), None, latent_dim=8, filters=32)
    result = export_generator(generator, tmp_path, "gan", tflite=(), verbose=False)
    assert result.blessed
    fn = tf.saved_model.load(str(result.path)).signatures["serving_default"]
    noise = np.random.default_rng(1).standard_normal((3, 8)).astype(np.float32)
    images = fn(noise=tf.constant(noise))["images"].numpy()
    assert images.shape == (3, 16, 16, 3)
    assert np.abs(images.astype(int) - expected_images(generator, noise)).max() <= 1
    with pytest.raises(ExportError, match="float32, float16 or dynamic"):
        export_generator(generator, tmp_path, "gan", tflite=("int8",), verbose=False)
