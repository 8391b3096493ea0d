"""Pick the `tf.distribute` strategy for the machine the job runs on.

One code path for every scale: the engine builds models, optimizers and metrics
inside ``strategy.scope()`` and feeds a global batch of per-replica batch ×
replicas, whatever strategy this returns.
"""

import json
import os
import tempfile

import tensorflow as tf

from kvision.errors import ModelError


def _tf_config():
    return json.loads(os.environ.get("TF_CONFIG") or "{}")


def get_strategy(devices=None):
    """The strategy for this process.

    ``MultiWorkerMirroredStrategy`` when ``TF_CONFIG`` names several workers,
    ``MirroredStrategy`` over ``devices`` when given (e.g. two logical CPUs in
    tests) or over all GPUs when there are several, the default strategy
    otherwise.
    """
    cluster = _tf_config().get("cluster", {})
    if len(cluster.get("worker", [])) + len(cluster.get("chief", [])) > 1:
        return tf.distribute.MultiWorkerMirroredStrategy()
    if devices:
        return tf.distribute.MirroredStrategy(devices)
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy([gpu.name for gpu in gpus])
    return tf.distribute.get_strategy()


def is_chief():
    """True unless ``TF_CONFIG`` says this process is a non-chief worker.

    The chief is the ``chief`` task, or worker 0 when the cluster has none.
    """
    config = _tf_config()
    task = config.get("task", {})
    if not task:
        return True
    if task.get("type") == "chief":
        return True
    has_chief = bool(config.get("cluster", {}).get("chief"))
    return task.get("type") == "worker" and task.get("index", 0) == 0 and not has_chief


def writable_dir(path):
    """``path`` on the chief; a fresh temporary directory on other workers.

    Every worker must run the same saving code (collective ops), but only the
    chief's files are kept.
    """
    return path if is_chief() else tempfile.mkdtemp(prefix="kvision-worker-")


def global_batch_size(strategy, batch_size, num_examples):
    """``batch_size`` per replica × replicas, checked against the ``num_examples`` it must fit in."""
    global_batch = batch_size * strategy.num_replicas_in_sync
    if num_examples < global_batch:
        raise ModelError(
            f"The training split must hold at least one global batch of {global_batch} "
            f"examples. Received: {num_examples} examples"
        )
    return global_batch
