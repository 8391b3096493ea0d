"""ONNX files of classifiers and GAN generators (Keras' own exporter) and their ONNX Runtime inference.

``model.onnx`` is written by ``keras.Model.export(format="onnx")``; with the
TensorFlow backend Keras traces the model and converts the graph with tf2onnx,
which needs the ``onnx`` package, and the export checks the file with ONNX
Runtime. All three are the optional ``onnx`` extra (``ONNX_INSTALL``).

The file answers what the TFLite file answers: a classifier takes ``image``
float32 ``[batch, H, W, C]`` in the raw 0..255 range and returns ``logits``
and ``probabilities``; a generator takes ``noise`` float32 ``[batch, latent]``
(and ``label`` int32 ``[batch]`` when conditional) and returns ``images``
uint8. Decoding image bytes is left to the caller, as for TFLite.
Translators and captioners have no ONNX file: their SavedModels take strings
and run TensorFlow Text ops, which ONNX has no operators for.
"""

import importlib.util
import warnings

import keras
import numpy as np

from kvision.errors import ExportError
from kvision.export.signatures import generator_endpoint
from kvision.export.tflite import classifier_endpoint
from kvision.models.gan import to_uint8

# Pinned, not tf2onnx's default (15), so a file does not change with the converter's
# version; every ONNX Runtime since 1.13 (2022) runs opset 17, and tf2onnx 1.17 writes up to 18.
ONNX_OPSET = 17
ONNX_PACKAGES = ("onnxruntime", "onnx", "tf2onnx")
ONNX_INSTALL = 'pip install "kvision[onnx]"'
ONNX_FILE = "model.onnx"


def require_onnx():
    """Raise ``ExportError`` naming the install command unless onnxruntime, onnx and tf2onnx are installed.

    Looked up without importing them, so a recipe can check its flags before
    anything heavy is loaded.
    """
    missing = [name for name in ONNX_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise ExportError(
            f"ONNX export needs {', '.join(ONNX_PACKAGES)}; install them with: {ONNX_INSTALL}. "
            f"Received: {', '.join(missing)} not installed"
        )


def _functional(specs, outputs_of, name):
    """A functional model over inputs shaped like ``specs`` (one ``tf.TensorSpec`` each) returning ``outputs_of(inputs)``."""
    inputs = [keras.Input(spec.shape[1:], dtype=spec.dtype.name, name=spec.name) for spec in specs]
    return keras.Model(inputs if len(inputs) > 1 else inputs[0], outputs_of(inputs), name=name)


def write_onnx(model, path, input_specs, output_names):
    """Write ``model`` to ``path`` with Keras' ONNX exporter at ``ONNX_OPSET``; name its outputs ``output_names``.

    tf2onnx names the outputs after the traced graph's tensors
    (``Identity:0``) and the batch dimension ``unk__N``; they are renamed so
    a caller runs ``session.run(["logits"], {"image": …})``.
    """
    require_onnx()
    import onnx

    signature = [list(input_specs)] if len(input_specs) > 1 else list(input_specs)
    with warnings.catch_warnings():  # Keras' numpy-2 patch of tf2onnx trips numpy's np.object warning
        warnings.filterwarnings("ignore", message=".*np.object.*", category=FutureWarning)
        try:
            model.export(str(path), format="onnx", input_signature=signature, opset_version=ONNX_OPSET, verbose=False)
        except Exception as err:  # tf2onnx raises its own types (and ValueError, KeyError) for ops it cannot map
            raise ExportError(
                f"Expected a model Keras' ONNX exporter (tf2onnx, opset {ONNX_OPSET}) converts; export without "
                f"--onnx to skip model.onnx. Received: {type(err).__name__}: {err}"
            ) from err
    proto = onnx.load(str(path))
    graph = proto.graph
    if len(graph.output) != len(output_names):
        raise ExportError(f"Expected an ONNX graph with outputs {list(output_names)}. "
                          f"Received: {[o.name for o in graph.output]}")
    for output, new in zip(graph.output, output_names):
        for node in graph.node:
            node.output[:] = [new if name == output.name else name for name in node.output]
            node.input[:] = [new if name == output.name else name for name in node.input]
        output.name = new
    for value in [*graph.input, *graph.output]:
        batch = value.type.tensor_type.shape.dim[0]
        if not batch.HasField("dim_value"):
            batch.dim_param = "batch"
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    return path


def write_classifier_onnx(model, path):
    """Write classifier ``model`` as ``path``: image → logits, probabilities (float32)."""
    _, specs = classifier_endpoint(model)

    def outputs(inputs):
        logits = keras.ops.cast(model(inputs[0], training=False), "float32")
        return [logits, keras.ops.softmax(logits)]

    return write_onnx(_functional(specs, outputs, f"{model.name}_onnx"), path, specs, ("logits", "probabilities"))


def write_generator_onnx(generator, path):
    """Write GAN ``generator`` (images in ``[-1, 1]``) as ``path``: noise (and label) → uint8 images."""
    _, specs = generator_endpoint(generator, check_labels=False)
    to_images = keras.layers.Lambda(to_uint8, name="to_uint8")
    wrapper = _functional(specs, lambda inputs: to_images(generator(inputs, training=False)), f"{generator.name}_onnx")
    return write_onnx(wrapper, path, specs, ("images",))


def onnx_versions():
    """The converter, opset and runtime an ONNX file was made and checked with, for evaluation.json."""
    import onnxruntime
    import tf2onnx

    return {"opset": ONNX_OPSET, "converter": f"keras {keras.__version__} + tf2onnx {tf2onnx.__version__}",
            "onnxruntime": onnxruntime.__version__}


class ONNXModel:
    """An ONNX Runtime session (CPU provider) of an exported ``model.onnx``; called with its named inputs."""

    def __init__(self, path_or_bytes, output_names):
        require_onnx()
        import onnxruntime

        source = path_or_bytes if isinstance(path_or_bytes, bytes) else str(path_or_bytes)
        self.session = onnxruntime.InferenceSession(source, providers=["CPUExecutionProvider"])
        found = [output.name for output in self.session.get_outputs()]
        if not set(output_names) <= set(found):
            raise ExportError(f"Expected an ONNX model with outputs {list(output_names)}. Received: {found}")
        self.output_names = list(output_names)

    def run(self, inputs):
        """``{output: array}`` for ``inputs`` (``{input: array}``)."""
        return dict(zip(self.output_names, self.session.run(self.output_names, inputs)))


class ONNXClassifier(ONNXModel):
    """Runs a classifier's ``model.onnx`` on raw 0..255 images, like ``TFLiteClassifier``."""

    def __init__(self, path_or_bytes):
        super().__init__(path_or_bytes, ("logits", "probabilities"))

    def __call__(self, images):
        """``{"logits", "probabilities"}`` (float32) for one batch of images."""
        return self.run({"image": np.asarray(images, np.float32)})

    def logits(self, images, *, batch_size=256):
        """Float32 logits of all ``images``, run in batches."""
        return np.concatenate([self(images[i : i + batch_size])["logits"] for i in range(0, len(images), batch_size)])


class ONNXGenerator(ONNXModel):
    """Runs a generator's ``model.onnx``: ``{"noise", "label"?}`` → uint8 images."""

    def __init__(self, path_or_bytes):
        super().__init__(path_or_bytes, ("images",))

    def __call__(self, inputs):
        return self.run(inputs)["images"]
