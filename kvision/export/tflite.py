"""TFLite conversion (float32, float16, dynamic-range, full-integer int8) and inference.

Each ``.tflite`` file has one signature, ``serving_default``, taking ``image``
``[N, H, W, C]`` in the raw 0..255 range (float32, or uint8/int8 for a
full-integer model) and returning ``logits`` and ``probabilities``. Decoding
of image bytes stays on the device side: TFLite's built-in ops have no image
decoder.
"""

import tempfile
import warnings
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from kvision.console import quiet_native_logs
from kvision.errors import ExportError

VARIANTS = ("float32", "float16", "dynamic", "int8")
INT8_IO_TYPES = {"float32": tf.float32, "uint8": tf.uint8, "int8": tf.int8}

try:  # LiteRT is TFLite's runtime; tf.lite.Interpreter is deprecated and only a fallback.
    from ai_edge_litert.interpreter import Interpreter
except ImportError:  # pragma: no cover - exercised only where LiteRT has no wheel
    Interpreter = tf.lite.Interpreter


def parse_variants(text):
    """``"float32,int8"`` → ``("float32", "int8")``, checked against ``VARIANTS``; ``""`` → ``()``."""
    variants = tuple(v.strip() for v in text.split(",") if v.strip())
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ExportError(f"Expected TFLite variants among {', '.join(VARIANTS)}. Received: {', '.join(unknown)}")
    return variants


def check_generator_variants(variants):
    """``variants`` unchanged if a generator can be written as all of them (no int8: nothing to calibrate on)."""
    if "int8" in variants:
        raise ExportError("Generators export as float32, float16 or dynamic TFLite files. Received: int8")
    return variants


def classifier_endpoint(model):
    """``(function, input specs)`` of a classifier's TFLite signature: image → logits, probabilities."""

    def serve(image):
        logits = tf.cast(model(image, training=False), tf.float32)
        return {"logits": logits, "probabilities": tf.nn.softmax(logits)}

    return serve, [tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name="image")]


def convert(model, variant, *, representative_images=None, int8_io="uint8", allow_select_ops=False):
    """The ``.tflite`` bytes of classifier ``model`` quantised as ``variant`` (one of ``VARIANTS``).

    ``representative_images`` (uint8 or float ``[N, H, W, C]`` from the
    training split, a few hundred) calibrate the activations of ``int8``;
    ``int8_io`` is the int8 model's input and output type.
    """
    if variant == "int8" and (representative_images is None or len(representative_images) == 0):
        raise ExportError("Full-integer int8 conversion needs representative training images. Received: none")
    images = None if representative_images is None else np.asarray(representative_images, np.float32)
    return convert_function(
        model, *classifier_endpoint(model), variant,
        representative_dataset=None if images is None else (lambda: ({"image": image[None]} for image in images)),
        int8_io=int8_io, allow_select_ops=allow_select_ops,
    )


def convert_function(model, function, input_specs, variant, *, representative_dataset=None, int8_io="uint8",
                     allow_select_ops=False):
    """The ``.tflite`` bytes of ``function`` (over ``model``'s weights) as its ``serving_default`` signature.

    Only TFLite built-in ops are allowed unless ``allow_select_ops`` (which
    makes the file need the Flex delegate). ``int8`` needs a
    ``representative_dataset`` (a callable yielding input dicts).
    """
    if variant not in VARIANTS:
        raise ExportError(f"Expected a TFLite variant among {', '.join(VARIANTS)}. Received: {variant!r}")
    if int8_io not in INT8_IO_TYPES:
        raise ExportError(f"Expected int8_io among {', '.join(INT8_IO_TYPES)}. Received: {int8_io!r}")
    if variant == "int8" and representative_dataset is None:
        raise ExportError("Full-integer int8 conversion needs a representative dataset. Received: none")
    with tempfile.TemporaryDirectory(prefix="kvision-tflite-") as tmp:
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint("serving_default", function, input_specs)
        archive.write_out(str(Path(tmp) / "model"), verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(str(Path(tmp) / "model"), signature_keys=["serving_default"])
        ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if variant != "float32":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if variant == "float16":
            converter.target_spec.supported_types = [tf.float16]
        if variant == "int8":
            converter.representative_dataset = representative_dataset
            ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = INT8_IO_TYPES[int8_io]
            converter.inference_output_type = INT8_IO_TYPES[int8_io]
        if allow_select_ops:
            ops.append(tf.lite.OpsSet.SELECT_TF_OPS)
        converter.target_spec.supported_ops = ops
        with warnings.catch_warnings(), quiet_native_logs():  # int8 calibration runs TF's deprecated tf.lite.Interpreter
            warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
            return converter.convert()


def load_interpreter(**source):
    """A LiteRT ``Interpreter`` of ``model_path=`` or ``model_content=``, its tensors allocated.

    Allocating applies the XNNPACK delegate, whose INFO line, like the
    interpreter's own, is kept off the terminal by ``quiet_native_logs``.
    """
    with quiet_native_logs():
        interpreter = Interpreter(**source)
        interpreter.allocate_tensors()
    return interpreter


class TFLiteClassifier:
    """Runs a ``.tflite`` classifier's ``serving_default`` signature on raw 0..255 images.

    Quantised inputs and outputs are converted with the tensors' own scale and
    zero point, so callers always pass raw images and get float logits.
    """

    def __init__(self, path_or_bytes):
        if isinstance(path_or_bytes, bytes):
            self.interpreter = load_interpreter(model_content=path_or_bytes)
        else:
            self.interpreter = load_interpreter(model_path=str(path_or_bytes))
        signatures = self.interpreter.get_signature_list()
        if "serving_default" not in signatures:
            raise ExportError(f"Expected a TFLite model with a serving_default signature. Received: {sorted(signatures)}")
        self.runner = self.interpreter.get_signature_runner("serving_default")
        self.input = self.runner.get_input_details()["image"]
        self.outputs = self.runner.get_output_details()

    def __call__(self, images):
        """``{"logits", "probabilities"}`` (float32) for one batch of images."""
        images = np.asarray(images, np.float32)
        dtype = self.input["dtype"]
        if dtype != np.float32:
            scale, zero_point = self.input["quantization"]
            info = np.iinfo(dtype)
            images = np.clip(np.round(images / scale + zero_point), info.min, info.max).astype(dtype)
        result = self.runner(image=images)
        for name, value in result.items():
            scale, zero_point = self.outputs[name]["quantization"]
            if value.dtype != np.float32:
                result[name] = (value.astype(np.float32) - zero_point) * scale
        return result

    def logits(self, images, *, batch_size=256):
        """Float32 logits of all ``images``, run in batches."""
        return np.concatenate([self(images[i : i + batch_size])["logits"] for i in range(0, len(images), batch_size)])
