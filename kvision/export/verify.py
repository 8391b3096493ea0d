"""Verification of an export (TFX's InfraValidator and Evaluator): fresh-process serving check and parity.

Every figure compares an artifact with the in-memory Keras model on the same
images: the SavedModel's signatures, called in a process that imports only
TensorFlow, each TFLite file and the ONNX file.
"""

import ctypes
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from kvision.export.files import owner_tag
from kvision.export.saved_model import read_warmup
from kvision.export.signatures import OUTPUTS
from kvision.export.tflite import load_interpreter

SERVING_CHECK = Path(__file__).with_name("serving_check.py")
SERVING_CHECK_PREFIX = "kvision-serving-check-"
PR_SET_PDEATHSIG = 1  # linux/prctl.h

# The blessing bars (issue "TFX-style exporter"): logits of a float artifact
# match Keras to within these; quantised artifacts keep the top-1 decision.
SAVED_MODEL_MAX_LOGIT_DIFF = 1e-4
TFLITE_FLOAT32_MAX_LOGIT_DIFF = 1e-3
# ...or to within this many float32 epsilons of the largest Keras |logit|, when
# that is more. The artifact runs the same float32 arithmetic in another kernel
# order (graph-mode op fusion, the TFLite converter), so its logits differ by a
# few rounding steps of the largest logit: 1-3 measured on ResNet-20, whether
# its logits are 30 or 1.5e6 (a diverged network whose BN moving statistics
# lag its activations). 16 epsilons (1.9e-6 of the largest logit) passes 1e-4
# only when logits pass ~52 (1e-3: ~520), so a model with ordinary logits keeps
# the absolute bar; a wrong weight, a training-mode layer or a stale variable
# moves logits by far more than 2e-6 of their size.
FLOAT32_LOGIT_EPSILONS = 16
QUANTIZED_MIN_TOP1_AGREEMENT = 0.98
QUANTIZED_MAX_ACCURACY_DROP = 0.01
# ONNX Runtime runs the same float32 arithmetic in its own kernels, as LiteRT
# does: the TFLite float32 bar. Its decisions on the whole evaluation split may
# differ only where two logits tie to within that (at most 1 in 1 000).
ONNX_MAX_LOGIT_DIFF = TFLITE_FLOAT32_MAX_LOGIT_DIFF
FLOAT32_MIN_TOP1_AGREEMENT = 0.999
# Generators: uint8 images from the same floats may round one grey level apart.
GENERATOR_MAX_PIXEL_DIFF = 1
GENERATOR_QUANTIZED_MEAN_PIXEL_DIFF = 2.0
# A translator's scores are sums of float32 log-probabilities over up to ~30 steps.
TRANSLATOR_MAX_SCORE_DIFF = 1e-3


@dataclass
class Check:
    """One pass/fail line of the blessing: ``value`` compared with ``bar`` by ``op`` (``<=`` or ``>=``)."""

    name: str
    value: float
    op: str
    bar: float

    @property
    def passed(self):
        if self.value is None or np.isnan(self.value):
            return False
        return self.value <= self.bar if self.op == "<=" else self.value >= self.bar

    def as_dict(self):
        return {**asdict(self), "passed": self.passed}


class ServingCheckError(RuntimeError):
    """The SavedModel could not be loaded or called in a fresh TensorFlow process."""


def serve_in_fresh_process(saved_model_dir, requests, model_name, *, imports=(), timeout=900):
    """Call every signature of ``saved_model_dir`` in a new Python process with TensorFlow only.

    ``imports`` are op-library modules the graph needs (``tensorflow_text``),
    imported in that process before the load.

    The process replays the model's warmup file, then ``requests``
    (``[(signature, {input: array})]``). Returns ``(summary, outputs)``: the
    check's summary (specs, calls, latencies, imported packages) and, per
    signature of ``requests``, its numeric outputs ``{name: array}``.
    """
    saved_model_dir = Path(saved_model_dir).resolve()  # the check runs in another working directory
    with tempfile.TemporaryDirectory(prefix=SERVING_CHECK_PREFIX, suffix=f"-{owner_tag()}") as tmp:
        warmup = write_tensor_requests(Path(tmp) / "warmup", read_warmup(saved_model_dir))
        parity = write_tensor_requests(Path(tmp) / "parity", requests)
        flags = [arg for module in imports for arg in ("--import", module)]
        command = [sys.executable, str(SERVING_CHECK), *flags, str(saved_model_dir), tmp, str(warmup), str(parity)]
        returncode, stderr = _run_dying_with_parent(command, tmp, timeout)
        if returncode != 0:
            lines = [line for line in stderr.strip().splitlines() if line.strip()]
            raise ServingCheckError(lines[-1] if lines else f"exit status {returncode}")
        summary = json.loads((Path(tmp) / "summary.json").read_text())
        with np.load(Path(tmp) / "outputs.npz") as arrays:
            outputs = {}
            for key in arrays.files:
                file_index, record, name = key.split("/", 2)
                if file_index == "1":
                    signature = requests[int(record)][0]
                    outputs.setdefault(signature, {})[name] = arrays[key]
    return summary, outputs


def _die_with_parent():
    """A ``preexec_fn`` giving the child SIGKILL when this process dies (Linux ``PR_SET_PDEATHSIG``); None elsewhere.

    ``prctl`` is looked up here, before the fork: the child of a
    multi-threaded process must not load libraries.
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def preexec():
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def _run_dying_with_parent(command, cwd, timeout):
    """``(returncode, stderr)`` of ``command``, run in its own process group that dies with this process.

    On a timeout or an exception here (Ctrl-C), the whole group is killed; a
    SIGKILL of this process kills the child through ``PR_SET_PDEATHSIG``.
    """
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd,
                               start_new_session=True, preexec_fn=_die_with_parent())
    try:
        _, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ServingCheckError(f"no answer within {timeout} s") from None
    finally:
        if process.poll() is None:  # still running: the group id is certainly still ours
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode, stderr


def write_tensor_requests(stem, requests):
    """Write ``[(signature, {input: array})]`` for ``serving_check.py``: ``<stem>.json`` and ``<stem>.tfrecord``.

    A format TensorFlow alone reads, so the check process needs no TF Serving
    client library; the warmup file's ``PredictionLog``s are decoded here.
    """
    index = []
    with tf.io.TFRecordWriter(f"{stem}.tfrecord") as writer:
        for signature, inputs in requests:
            tensors = {name: tf.constant(value) for name, value in inputs.items()}
            index.append({"signature": signature, "inputs": [[name, t.dtype.name] for name, t in tensors.items()]})
            for tensor in tensors.values():
                writer.write(tf.io.serialize_tensor(tensor).numpy())
    Path(f"{stem}.json").write_text(json.dumps(index))
    return stem


def serving_checks(summary, expected_outputs):
    """Every signature answered its warmup requests with ``expected_outputs``; the server needed no kvision."""
    complete = {name for name, spec in summary["signatures"].items() if set(spec["outputs"]) == set(expected_outputs)}
    answered = {call["signature"] for call in summary["calls"] if call["file"] == 0} & complete
    return [
        Check("signatures answering warmup with every output", float(len(answered)), ">=",
              float(len(summary["signatures"]))),
        Check("kvision or TF Serving modules in the server process",
              float(summary["imported"]["kvision"] or summary["imported"]["tensorflow_serving"]), "<=", 0.0),
    ]


def largest_abs_logit(keras_logits):
    """The largest finite |logit| of ``keras_logits``, 0 if none is finite: the size float32 rounding scales with."""
    finite = np.abs(np.asarray(keras_logits)[np.isfinite(keras_logits)])
    return float(finite.max()) if finite.size else 0.0


def logit_bar(absolute, largest):
    """The |Δlogit| bar of a float32 artifact: ``absolute``, or float32 rounding at logits of size ``largest``.

    ``largest`` comes from the Keras logits only: an artifact's own logits
    never widen its bar. A non-finite difference fails any bar.
    """
    return max(absolute, FLOAT32_LOGIT_EPSILONS * float(np.finfo(np.float32).eps) * largest)


def classifier_checks(summary, outputs, keras_logits, class_names):
    """Checks on a classifier's fresh-process results: logits and class names match Keras."""
    bar = logit_bar(SAVED_MODEL_MAX_LOGIT_DIFF, largest_abs_logit(keras_logits))
    checks = [
        Check(f"SavedModel {signature} max abs Δlogit", float(np.max(np.abs(values["logits"] - keras_logits))), "<=",
              bar)
        for signature, values in sorted(outputs.items())
    ]
    expected_names = [class_names[i] for i in np.argmax(keras_logits, axis=-1)]
    wrong_names = sum(
        sum(a != b for a, b in zip(call["class_name"], expected_names)) for call in summary["calls"] if call["file"] == 1
    )
    checks.append(Check("SavedModel class_name outputs differing from Keras", float(wrong_names), "<=", 0.0))
    return checks + serving_checks(summary, OUTPUTS)


def classifier_figures(classifier, images, labels, keras_logits, parity_size):
    """Parity figures of a ``TFLiteClassifier`` or ``ONNXClassifier`` on evaluation ``images`` whose Keras logits are given.

    Returns max |Δlogit| and the largest Keras |logit| (which scales the
    float32 bar) on the first ``parity_size`` images and, on all of them,
    top-1 agreement with Keras, the TFLite accuracy, its drop from Keras, and
    the batch-1 latency.
    """
    logits = classifier.logits(images)
    predicted = np.argmax(logits, axis=-1)
    keras_predicted = np.argmax(keras_logits, axis=-1)
    accuracy = float(np.mean(predicted == labels))
    return {
        "max_abs_logit_diff": float(np.max(np.abs(logits[:parity_size] - keras_logits[:parity_size]))),
        "keras_max_abs_logit": largest_abs_logit(keras_logits[:parity_size]),
        "top1_agreement": float(np.mean(predicted == keras_predicted)),
        "accuracy": accuracy,
        "accuracy_drop": float(np.mean(keras_predicted == labels)) - accuracy,
        "latency_ms_batch1": median_latency_ms(classifier, images[:1]),
    }


def tflite_checks(variant, figures):
    """The blessing bars of a TFLite variant: float32 matches logits; quantised ones keep decisions."""
    if variant == "float32":
        bar = logit_bar(TFLITE_FLOAT32_MAX_LOGIT_DIFF, figures["keras_max_abs_logit"])
        return [Check("TFLite float32 max abs Δlogit", figures["max_abs_logit_diff"], "<=", bar)]
    return [
        Check(f"TFLite {variant} top-1 agreement", figures["top1_agreement"], ">=", QUANTIZED_MIN_TOP1_AGREEMENT),
        Check(f"TFLite {variant} accuracy drop", figures["accuracy_drop"], "<=", QUANTIZED_MAX_ACCURACY_DROP),
    ]


def onnx_checks(figures):
    """The blessing bars of a classifier's ONNX file: float32 logits match, decisions agree."""
    bar = logit_bar(ONNX_MAX_LOGIT_DIFF, figures["keras_max_abs_logit"])
    return [
        Check("ONNX max abs Δlogit", figures["max_abs_logit_diff"], "<=", bar),
        Check("ONNX top-1 agreement", figures["top1_agreement"], ">=", FLOAT32_MIN_TOP1_AGREEMENT),
    ]


def generator_figures(generator, inputs, expected_images):
    """Pixel differences from the Keras images of ``generator(inputs)`` (uint8 images), and its latency."""
    diff = np.abs(generator(inputs).astype(np.int16) - expected_images)
    one = {key: value[:1] for key, value in inputs.items()}
    return {
        "max_abs_pixel_diff": float(diff.max()),
        "mean_abs_pixel_diff": float(diff.mean()),
        "latency_ms_batch1": median_latency_ms(generator, one),
    }


def generator_tflite_figures(path, inputs, expected_images):
    """``generator_figures`` of a generator's ``.tflite``."""
    runner = load_interpreter(model_path=str(path)).get_signature_runner("serving_default")
    return generator_figures(lambda batch: runner(**batch)["images"], inputs, expected_images)


def generator_tflite_checks(variant, figures):
    """A float32 generator file matches to one grey level; quantised ones to a mean of two."""
    if variant == "float32":
        return [Check("TFLite float32 max abs Δpixel", figures["max_abs_pixel_diff"], "<=", GENERATOR_MAX_PIXEL_DIFF)]
    return [Check(f"TFLite {variant} mean abs Δpixel", figures["mean_abs_pixel_diff"], "<=", GENERATOR_QUANTIZED_MEAN_PIXEL_DIFF)]


def generator_onnx_checks(figures):
    """A generator's ONNX file matches the Keras images to one grey level, as the float32 TFLite file."""
    return [Check("ONNX max abs Δpixel", figures["max_abs_pixel_diff"], "<=", GENERATOR_MAX_PIXEL_DIFF)]


def median_latency_ms(fn, batch, *, repeats=20):
    """Median wall time of ``fn(batch)`` in milliseconds, after one warm-up call."""
    fn(batch)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(batch)
        times.append((time.perf_counter() - start) * 1000)
    return float(np.median(times))


def format_checks(checks):
    """The checks as a short fixed-width table, one line each."""
    width = max(len(c.name) for c in checks)
    lines = [f"{'export check'.ljust(width)}  {'value':>10}  {'bar':>12}  ok"]
    for c in checks:
        lines.append(f"{c.name.ljust(width)}  {c.value:>10.4g}  {c.op + ' ' + format(c.bar, 'g'):>12}  {'yes' if c.passed else 'NO'}")
    return "\n".join(lines)
