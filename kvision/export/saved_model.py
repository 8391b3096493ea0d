"""What TF Serving reads besides the graph: warmup requests, version numbers, models.config.

TF Serving watches ``<base>/<name>/`` and loads integer-named version
directories; ``push.py`` decides when a finished directory gets such a name.
"""

import os
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2
from tensorflow_serving.config import model_server_config_pb2

from kvision.errors import ExportError
from kvision.export.files import fsync_path, owner_tag
from kvision.export.signatures import EXAMPLE_FEATURE

WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
MAX_WARMUP_RECORDS = 1000
MODELS_CONFIG_TMP_PREFIX = ".models.config."


def next_version(model_dir, version=None):
    """``version`` checked to be a free non-negative integer; default: Unix time, or the next free integer after it.

    The default moves on when another export of the same model took this
    second's version, instead of failing after all the work.
    """
    if version is None:
        version = int(time.time())
        while (Path(model_dir) / str(version)).exists():
            version += 1
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise ExportError(f"A model version must be a non-negative integer. Received: version={version!r}")
    if (Path(model_dir) / str(version)).exists():
        raise ExportError(
            f"Version {version} of {model_dir} already exists and is never overwritten; "
            f"pick another version. Received: version={version}"
        )
    return version


def check_keep_versions(keep_versions):
    """Refuse a ``keep_versions`` below 1 (before an export starts, not after it published)."""
    if keep_versions < 1:
        raise ExportError(f"keep_versions must be at least 1. Received: {keep_versions}")


def versions(model_dir):
    """The integer version directories under ``model_dir``, ascending (what TF Serving would load)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return []
    return sorted(int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit())


def encode_png(images):
    """uint8 ``[N, H, W, C]`` images as a list of PNG byte strings (lossless)."""
    return [tf.io.encode_png(image).numpy() for image in images]


def serialize_examples(images):
    """uint8 images as serialized ``tf.train.Example``s with a PNG under ``image/encoded``."""
    return [
        tf.train.Example(
            features=tf.train.Features(feature={EXAMPLE_FEATURE: tf.train.Feature(bytes_list=tf.train.BytesList(value=[png]))})
        ).SerializeToString()
        for png in encode_png(images)
    ]


def signature_inputs(images):
    """The same uint8 images as the input of each classifier signature, as numpy arrays."""
    return {
        "serving_default": {"image_bytes": np.array(encode_png(images), dtype=object)},
        "serve_images": {"images": np.asarray(images, np.uint8)},
        "serve_examples": {"examples": np.array(serialize_examples(images), dtype=object)},
    }


def classifier_requests(images, *, batch_sizes=(1, 8)):
    """``[(signature, inputs)]``: batches of real ``images`` of each size in ``batch_sizes``, for every signature."""
    if len(images) < sum(batch_sizes):
        raise ExportError(f"Warmup needs {sum(batch_sizes)} evaluation images. Received: {len(images)}")
    requests, start = [], 0
    for batch_size in batch_sizes:
        requests += list(signature_inputs(images[start : start + batch_size]).items())
        start += batch_size
    return requests


def prediction_logs(requests, model_name):
    """TF Serving ``PredictionLog``s of ``[(signature, {input: array})]`` requests."""
    logs = []
    for signature, inputs in requests:
        request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature))
        for key, value in inputs.items():
            request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
        logs.append(prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request)))
    return logs


def write_warmup(saved_model_dir, requests, model_name):
    """Write ``assets.extra/tf_serving_warmup_requests``, which TF Serving replays on load; return its path."""
    if not 0 < len(requests) <= MAX_WARMUP_RECORDS:
        raise ExportError(f"TF Serving reads 1 to {MAX_WARMUP_RECORDS} warmup records. Received: {len(requests)}")
    path = Path(saved_model_dir) / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for log in prediction_logs(requests, model_name):
            writer.write(log.SerializeToString())
    return path


def read_warmup(saved_model_dir):
    """The warmup records as ``[(signature, {input: ndarray})]``, decoded as TF Serving would."""
    requests = []
    for record in tf.data.TFRecordDataset(str(Path(saved_model_dir) / WARMUP_FILE)):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        request = log.predict_log.request
        inputs = {key: tf.make_ndarray(proto) for key, proto in request.inputs.items()}
        requests.append((request.model_spec.signature_name, inputs))
    return requests


def write_models_config(base_dir, name, *, keep_versions=2):
    """Write ``<base>/<name>/models.config`` for ``tensorflow_model_server --model_config_file``.

    The config serves the newest ``keep_versions`` versions of the model
    (``model_version_policy { latest { num_versions: K } }``). It is written
    to a temporary file, fsynced and renamed, so a server polling it never
    reads half; the temporary file is removed when any step fails.
    """
    check_keep_versions(keep_versions)
    model_dir = (Path(base_dir) / name).resolve()
    config = model_server_config_pb2.ModelServerConfig()
    entry = config.model_config_list.config.add(name=name, base_path=str(model_dir), model_platform="tensorflow")
    entry.model_version_policy.latest.num_versions = keep_versions
    path = model_dir / "models.config"
    tmp = model_dir / f"{MODELS_CONFIG_TMP_PREFIX}tmp-{owner_tag()}"
    try:
        tmp.write_text(str(config))
        fsync_path(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_path(model_dir)
    return path


def saved_model_size(path):
    """Bytes on disk of everything under ``path``."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())
