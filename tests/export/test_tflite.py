"""TFLite conversion: each variant, its input type, built-in ops only, LiteRT inference."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kvision.errors import ExportError
from kvision.export import TFLiteClassifier, convert
from kvision.export.tflite import Interpreter, parse_variants

ROOT = Path(__file__).resolve().parents[2]
CONVERT_AND_RUN = """
import keras, numpy as np
from kvision.export import TFLiteClassifier, convert
inputs = keras.Input((8, 8, 1), name="image")
model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(keras.layers.Conv2D(4, 3)(inputs))))
images = np.random.default_rng(0).integers(0, 256, (8, 8, 8, 1)).astype("float32")
print(TFLiteClassifier(convert(model, "int8", representative_images=images)).logits(images).shape)
"""


@pytest.fixture(scope="module")
def converted(trained_cnn, quadrants):
    train_images = quadrants[0][0][:200]
    return {
        variant: convert(trained_cnn, variant, representative_images=train_images)
        for variant in ("float32", "float16", "dynamic", "int8")
    }


def ops(content):
    interpreter = Interpreter(model_content=content)
    return {op["op_name"] for op in interpreter._get_ops_details()}


def test_litert_runs_the_files(converted):
    assert Interpreter.__module__.startswith("ai_edge_litert")
    for content in converted.values():
        runner = TFLiteClassifier(content).runner
        assert set(runner.get_input_details()) == {"image"}
        assert set(runner.get_output_details()) == {"logits", "probabilities"}


@pytest.mark.parametrize("variant, max_diff", [("float32", 1e-4), ("float16", 0.05), ("dynamic", 0.5), ("int8", 1.0)])
def test_every_variant_keeps_the_keras_decisions(converted, trained_cnn, quadrants, variant, max_diff):
    images, labels = quadrants[1]
    expected = trained_cnn.predict(images.astype(np.float32), verbose=0)
    logits = TFLiteClassifier(converted[variant]).logits(images, batch_size=64)
    assert np.max(np.abs(logits - expected)) <= max_diff
    assert np.mean(logits.argmax(-1) == expected.argmax(-1)) >= 0.98


def test_variants_shrink_the_file_and_int8_takes_uint8_pixels(converted):
    sizes = {variant: len(content) for variant, content in converted.items()}
    assert sizes["float16"] < 0.7 * sizes["float32"] and sizes["dynamic"] < 0.5 * sizes["float32"]
    assert sizes["int8"] < 0.5 * sizes["float32"]
    details = TFLiteClassifier(converted["int8"]).input
    assert details["dtype"] == np.uint8 and list(details["shape_signature"]) == [-1, 16, 16, 1]
    assert details["quantization"][1] == 0, "0..255 pixels map onto uint8 without offset"
    assert not any(name.startswith("Flex") for content in converted.values() for name in ops(content))
    interpreter = Interpreter(model_content=converted["int8"])
    tensors = {t["index"]: t["dtype"] for t in interpreter.get_tensor_details()}
    convs = [op for op in interpreter._get_ops_details() if op["op_name"] in ("CONV_2D", "FULLY_CONNECTED")]
    assert convs and all(tensors[op["inputs"][0]] == np.int8 for op in convs), "integer arithmetic, not float"


def test_int8_io_types(trained_cnn, quadrants):
    images = quadrants[0][0][:100]
    signed = TFLiteClassifier(convert(trained_cnn, "int8", representative_images=images, int8_io="int8"))
    float_io = TFLiteClassifier(convert(trained_cnn, "int8", representative_images=images, int8_io="float32"))
    assert signed.input["dtype"] == np.int8 and float_io.input["dtype"] == np.float32
    expected = trained_cnn.predict(quadrants[1][0].astype(np.float32), verbose=0).argmax(-1)
    for classifier in (signed, float_io):
        assert np.mean(classifier.logits(quadrants[1][0]).argmax(-1) == expected) >= 0.98


def test_bad_options_say_what_was_expected(trained_cnn):
    with pytest.raises(ExportError, match="among float32, float16, dynamic, int8. Received: int4"):
        parse_variants("float32, int4")
    assert parse_variants("") == () and parse_variants("int8,float16") == ("int8", "float16")
    with pytest.raises(ExportError, match="needs representative training images"):
        convert(trained_cnn, "int8")
    with pytest.raises(ExportError, match="int8_io among float32, uint8, int8. Received: 'int16'"):
        convert(trained_cnn, "int8", representative_images=np.zeros((2, 16, 16, 1)), int8_io="int16")


@pytest.mark.parametrize("level, noisy", [("2", False), ("0", True)])
def test_conversion_and_loading_keep_tflite_info_lines_off_at_a_quiet_log_level(tmp_path, level, noisy):
    """The converter's and LiteRT's C++ INFO lines ignore TF_CPP_MIN_LOG_LEVEL; the level the command sets hides them."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": level}
    done = subprocess.run([sys.executable, "-c", CONVERT_AND_RUN], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "(8, 3)", done.stderr[-2000:]
    for line in ("fully_quantize: 0", "Created TensorFlow Lite XNNPACK delegate"):
        assert (line in done.stderr) == noisy, done.stderr[-2000:]
