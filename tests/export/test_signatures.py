"""The classifier signatures: raw inputs in, probabilities and class names out, clean errors."""

import io
import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from kvision.export import classifier_archive
from kvision.export.saved_model import encode_png, serialize_examples
from tests import bombs
from tests.export.helpers import CLASS_NAMES


@pytest.fixture(scope="module")
def saved(trained_cnn, tmp_path_factory):
    """The classifier signatures of ``trained_cnn``, written as a SavedModel."""
    path = tmp_path_factory.mktemp("signatures") / "model"
    classifier_archive(trained_cnn, CLASS_NAMES).write_out(str(path), verbose=False)
    return path


@pytest.fixture(scope="module")
def served(saved):
    """Those signatures, loaded in this process."""
    return tf.saved_model.load(str(saved)).signatures


def encode(image, fmt, mode):
    """One uint8 ``[H, W, 1]`` image encoded by Pillow as ``fmt`` in colour ``mode`` (L, RGB, RGBA)."""
    picture = Image.fromarray(image[..., 0], "L").convert(mode)
    buffer = io.BytesIO()
    picture.save(buffer, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def test_lossless_bytes_at_the_model_size_reach_the_model_bit_exact(served, trained_cnn, quadrants):
    images, _ = quadrants[1]
    out = served["serving_default"](image_bytes=tf.constant(encode_png(images[:16])))
    expected = trained_cnn.predict(images[:16].astype(np.float32), verbose=0)
    np.testing.assert_array_equal(out["logits"].numpy(), expected)
    np.testing.assert_allclose(out["probabilities"].numpy(), tf.nn.softmax(expected).numpy(), atol=1e-6)
    np.testing.assert_array_equal(out["class_id"].numpy(), expected.argmax(-1))
    assert [n.decode() for n in out["class_name"].numpy()] == [CLASS_NAMES[i] for i in expected.argmax(-1)]


FORMATS = [("PNG", "L"), ("PNG", "RGB"), ("PNG", "RGBA"), ("JPEG", "L"), ("JPEG", "RGB"),
           ("BMP", "L"), ("BMP", "RGB"), ("GIF", "L"), ("GIF", "RGB"), ("GIF", "RGBA")]


@pytest.mark.parametrize("fmt, mode", FORMATS)
@pytest.mark.parametrize("size", [16, 40])
def test_any_format_colour_mode_and_size_is_decoded_and_classified(served, quadrants, fmt, mode, size):
    images, labels = quadrants[1]
    resized = [np.asarray(Image.fromarray(i[..., 0]).resize((size, size)))[..., None] for i in images[:8]]
    encoded = [encode(image, fmt, mode) for image in resized]
    out = served["serving_default"](image_bytes=tf.constant(encoded))
    assert out["logits"].shape == (8, 4) and out["probabilities"].dtype == tf.float32
    np.testing.assert_array_equal(out["class_id"].numpy(), labels[:8])


def test_serve_images_and_serve_examples_agree_with_keras(served, trained_cnn, quadrants):
    images, _ = quadrants[1]
    expected = trained_cnn.predict(images[:8].astype(np.float32), verbose=0)
    from_pixels = served["serve_images"](images=tf.constant(images[:8]))
    from_examples = served["serve_examples"](examples=tf.constant(serialize_examples(images[:8])))
    np.testing.assert_array_equal(from_pixels["logits"].numpy(), expected)
    np.testing.assert_array_equal(from_examples["logits"].numpy(), expected)
    assert sorted(from_examples) == ["class_id", "class_name", "logits", "probabilities"]


@pytest.mark.parametrize(
    "signature, inputs, message",
    [
        ("serving_default", {"image_bytes": tf.constant([b"not an image"])},
         r"expected a JPEG, PNG, GIF or BMP image. Received: 12 bytes starting \[110 111 116"),
        ("serving_default", {"image_bytes": tf.constant([b"\x89PNG\r\n\x1a\n truncated"])},
         "Invalid PNG|expected an image of at most"),
        ("serve_images", {"images": tf.zeros((1, 16, 16, 1), tf.float32)}, "expected to be a uint8 tensor but is a float tensor"),
        ("serve_images", {"images": tf.zeros((1, 28, 28, 1), tf.uint8)}, r"serve_images expects uint8 images of shape \[N, 16, 16, 1\]"),
        ("serve_examples", {"examples": tf.constant([tf.train.Example().SerializeToString()])}, "image/encoded"),
        ("serve_examples", {"examples": tf.constant([b"not a proto"])}, "Could not parse example input"),
    ],
)
def test_bad_inputs_are_invalid_argument_errors_that_say_what_was_expected(served, signature, inputs, message):
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        served[signature](**inputs)


@pytest.mark.parametrize("signature, inputs, shape", [
    ("serve_images", tf.zeros((16, 16, 1), tf.uint8), r"\[16 16 1\]"),
    ("serve_images", tf.zeros((1, 1, 16, 16, 1), tf.uint8), r"\[1 1 16 16 1\]"),
    ("serve_images", tf.zeros((0, 16, 16, 1), tf.uint8), r"\[0 16 16 1\]"),
    ("serve_images", tf.zeros((257, 16, 16, 1), tf.uint8), r"\[257 16 16 1\]"),
    ("serving_default", tf.constant([], tf.string), r"\[0\]"),
    ("serving_default", tf.constant([[b"x"]]), r"\[1 1\]"),
    ("serve_examples", tf.constant([], tf.string), r"\[0\]"),
])  # fmt: skip
def test_empty_oversized_and_wrong_rank_batches_get_the_documented_message(served, signature, inputs, shape):
    expects = {
        "serve_images": r"serve_images expects uint8 images of shape \[N, 16, 16, 1\]",
        "serving_default": r"serving_default expects a string batch of encoded images of shape \[N\]",
        "serve_examples": r"serve_examples expects a string batch of tf.train.Examples of shape \[N\]",
    }[signature]
    name = {"serve_images": "images", "serving_default": "image_bytes", "serve_examples": "examples"}[signature]
    with pytest.raises(tf.errors.InvalidArgumentError, match=rf"{expects} with 1 <= N <= 256. Received: the shape {shape}"):
        served[signature](**{name: inputs})


def test_bombs_are_refused_before_decoding_by_both_bytes_signatures(served):
    for bomb, size in ((bombs.png_bomb(23_000, 23_000), "23000 x 23000"), (bombs.jpeg_bomb(60_000, 60_000), "60000 x 60000")):
        with pytest.raises(tf.errors.InvalidArgumentError, match=rf"at most 40000000 pixels. Received: {size}"):
            served["serving_default"](image_bytes=tf.constant([bombs.encode(np.zeros((16, 16), np.uint8), "PNG"), bomb]))
        with pytest.raises(tf.errors.InvalidArgumentError, match=rf"at most 40000000 pixels. Received: {size}"):
            served["serve_examples"](examples=tf.constant(serialize_examples_of_bytes([bomb])))


def serialize_examples_of_bytes(encoded):
    return [tf.train.Example(features=tf.train.Features(feature={
        "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[data]))})).SerializeToString()
        for data in encoded]


class Squash(keras.layers.Layer):
    """A custom layer the serving process never sees the code of."""

    def call(self, x):
        return x / (1.0 + tf.abs(x))


# One process with TensorFlow alone serves both SavedModels: the custom-layer model first (before anything
# imports project code), then bombs to the classifier; it prints a JSON report.
FRESH_SERVER = """
import json, resource, sys, numpy as np, tensorflow as tf
custom, classifier, images, logits, root = sys.argv[1:]
fn = tf.saved_model.load(custom).signatures["serve_images"]
np.save(logits, fn(images=tf.constant(np.load(images)))["logits"].numpy())
project = sorted(m for m in sys.modules if m.startswith(("kvision", "tests")))
sys.path.insert(0, root)
from tests import bombs
fn = tf.saved_model.load(classifier).signatures["serving_default"]
png, jpeg = bombs.png_bomb(10_000, 10_000), bombs.jpeg_bomb(60_000, 60_000)
outcomes = []
for request in ([png], [png, png, jpeg], [bombs.gif_bomb(2000, 2000, 300)], [bombs.png_bomb(6000, 6000)]):
    try:
        outcomes.append(int(fn(image_bytes=tf.constant(request))["class_id"].shape[0]))
    except tf.errors.InvalidArgumentError as err:
        outcomes.append("pixels" if "at most 40000000 pixels" in err.message else err.message)
print(json.dumps({"project_modules": project, "outcomes": outcomes,
                  "peak_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


@pytest.fixture(scope="module")
def fresh_server(saved, quadrants, tmp_path_factory):
    """``(model, images, logits, report)``: a custom-layer model, the images ``FRESH_SERVER`` sent it, its logits and report."""
    tmp = tmp_path_factory.mktemp("fresh-server")
    inputs = keras.Input((16, 16, 1))
    x = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(4)(Squash()(keras.layers.Dense(8)(x))))
    classifier_archive(model, CLASS_NAMES).write_out(str(tmp / "custom"), verbose=False)
    images = quadrants[1][0][:5]
    np.save(tmp / "images.npy", images)
    root = str(Path(__file__).resolve().parents[2])
    done = subprocess.run([sys.executable, "-c", FRESH_SERVER, str(tmp / "custom"), str(saved), str(tmp / "images.npy"),
                           str(tmp / "logits.npy"), root], capture_output=True, text=True, timeout=300, cwd=tmp, check=True)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return model, images, np.load(tmp / "logits.npy"), report


@pytest.mark.slow
def test_a_model_with_a_custom_layer_serves_without_its_python_code(fresh_server):
    model, images, logits, report = fresh_server
    assert report["project_modules"] == [], "the serving process imported project code"
    np.testing.assert_allclose(logits, model.predict(images.astype(np.float32), verbose=0), atol=1e-6)


@pytest.mark.slow
def test_bomb_requests_keep_a_fresh_serving_process_under_1_5_gb(fresh_server):
    """A 100 MP PNG (0.1 MB), three bombs at once, a GIF of 300 frames of 4 MP, a 36 MP image: bounded memory."""
    report = fresh_server[-1]
    assert report["outcomes"] == ["pixels", "pixels", 1, 1], "the GIF answers with its first frame"
    assert report["peak_bytes"] < 1.5 * 2**30, f"peak RSS {report['peak_bytes'] / 2**30:.2f} GiB"
