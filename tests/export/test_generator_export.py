"""GAN generators export through the same verified, versioned path as classifiers."""

import json

import numpy as np
import pytest
import tensorflow as tf

from kvision.errors import ExportError
from kvision.export import export_generator
from kvision.export.onnx_export import ONNXGenerator
from kvision.models import build
from tests.export.helpers import HAVE_ONNX


@pytest.fixture(scope="module")
def conditional(tmp_path_factory):
    """``(generator, result)``: a conditional generator exported with two TFLite files and (if installed) model.onnx."""
    generator = build("dcgan_generator", (16, 16, 1), 4, latent_dim=8, filters=32)
    base = tmp_path_factory.mktemp("generator")
    result = export_generator(generator, base, "gan", tflite=("float32", "float16"), onnx=HAVE_ONNX, version=2,
                              verbose=False)
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


def test_the_export_serves_in_a_process_without_kvision(conditional):
    """The exporter's fresh-process check is that process (TensorFlow only); its figures are in evaluation.json."""
    _, result = conditional
    evaluation = json.loads((result.path / "evaluation.json").read_text())
    checks = {c["name"]: c for c in evaluation["checks"]}
    served = checks["SavedModel max abs Δpixel (0..255)"]
    assert served["passed"] and served["value"] <= 1 and evaluation["parity"]["parity_examples"] == 64, \
        "a process that loaded the SavedModel drew the Keras images of 64 latents to within one grey level"
    assert checks["kvision or TF Serving modules in the server process"] == {
        "name": "kvision or TF Serving modules in the server process", "value": 0.0, "op": "<=", "bar": 0.0,
        "passed": True}, "the serving process imported no kvision"
    assert checks["signatures answering warmup with every output"]["passed"]


def test_a_generator_exports_model_onnx_drawing_the_keras_images(conditional):
    pytest.importorskip("onnxruntime")
    generator, result = conditional
    evaluation = json.loads((result.path / "evaluation.json").read_text())
    assert result.blessed and evaluation["parity"]["onnx"]["max_abs_pixel_diff"] <= 1
    assert {c["name"]: c["bar"] for c in evaluation["checks"]}["ONNX max abs Δpixel"] == 1
    noise = np.random.default_rng(5).standard_normal((6, 8)).astype(np.float32)
    labels = np.array([0, 1, 2, 3, 0, 1], np.int32)
    images = ONNXGenerator(result.path / "model.onnx")({"noise": noise, "label": labels})
    assert images.dtype == np.uint8 and images.shape == (6, 16, 16, 1)
    assert np.abs(images.astype(np.int16) - expected_images(generator, noise, labels)).max() <= 1


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
