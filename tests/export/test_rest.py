"""A published, blessed classifier export answers TF Serving REST request bodies like the Keras model does.

TF Serving's binary is not installable here, so ``rest_inputs`` applies its
documented JSON → tensor rules (row ``instances`` and columnar ``inputs``,
``{"b64": …}`` for strings, numbers converted to the signature's dtype) and the
test calls the signature with the result.
"""

import base64
import json

import numpy as np
import pytest
import tensorflow as tf

from kvision.export.saved_model import encode_png
from tests.export.helpers import CLASS_NAMES


def _tensor_value(value, dtype):
    if dtype == tf.string:
        decode = lambda v: base64.b64decode(v["b64"]) if isinstance(v, dict) else v.encode()  # noqa: E731
        return np.array([decode(v) for v in value], dtype=object)
    return np.array(value, dtype=dtype.as_numpy_dtype)


def rest_inputs(body, signature):
    """The keyword tensors TF Serving would pass to ``signature`` for the REST ``:predict`` ``body``."""
    request = json.loads(body)
    specs = signature.structured_input_signature[1]
    if "instances" in request:
        instances = request["instances"]
        columns = (
            {name: [row[name] for row in instances] for name in specs}
            if len(specs) > 1 else {next(iter(specs)): instances}
        )
    else:
        inputs = request["inputs"]
        columns = inputs if isinstance(inputs, dict) and set(inputs) == set(specs) else {next(iter(specs)): inputs}
    return {name: tf.constant(_tensor_value(columns[name], spec.dtype)) for name, spec in specs.items()}


@pytest.fixture(scope="module")
def served(blessed, trained_cnn, quadrants):
    """The signatures of the shared blessed export (tests/export/conftest.py), six images and Keras' classes for them."""
    images = quadrants[1][0][:6]
    signatures = tf.saved_model.load(str(blessed[1].path)).signatures
    return signatures, images, trained_cnn.predict(images.astype(np.float32), verbose=0).argmax(-1)


def b64(data):
    return {"b64": base64.b64encode(data).decode("ascii")}


def test_row_format_image_bytes_request(served):
    signatures, images, expected = served
    body = json.dumps({"signature_name": "serving_default", "instances": [b64(png) for png in encode_png(images)]})
    out = signatures["serving_default"](**rest_inputs(body, signatures["serving_default"]))
    np.testing.assert_array_equal(out["class_id"].numpy(), expected)
    assert [n.decode() for n in out["class_name"].numpy()] == [CLASS_NAMES[i] for i in expected]


def test_columnar_image_bytes_request(served):
    signatures, images, expected = served
    body = json.dumps({"inputs": {"image_bytes": [b64(png) for png in encode_png(images)]}})
    out = signatures["serving_default"](**rest_inputs(body, signatures["serving_default"]))
    np.testing.assert_array_equal(out["class_id"].numpy(), expected)


def test_row_format_pixel_request(served):
    signatures, images, expected = served
    body = json.dumps({"signature_name": "serve_images", "instances": images.tolist()})
    out = signatures["serve_images"](**rest_inputs(body, signatures["serve_images"]))
    np.testing.assert_array_equal(out["class_id"].numpy(), expected)
