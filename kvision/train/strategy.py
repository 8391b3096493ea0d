"""Pick the `tf.distribute` strategy for the machine the job runs on.

One code path for every scale: the engine builds models, optimizers and metrics
inside ``strategy.scope()`` and feeds a global batch of per-replica batch ×
replicas, whatever strategy this returns.
"""

import contextlib
import functools
import json
import os
import shutil
import tempfile
from pathlib import Path

import keras
import tensorflow as tf
from keras.src.backend.tensorflow import trainer as keras_tf_trainer

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
        return _multi_worker_strategy()
    if devices:
        return tf.distribute.MirroredStrategy(devices)
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy([gpu.name for gpu in gpus])
    return tf.distribute.get_strategy()


@functools.cache
def _multi_worker_strategy():
    """The process's one ``MultiWorkerMirroredStrategy`` (its collectives are configured once, at startup)."""
    _fix_keras_multi_worker_fit()
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    except RuntimeError as err:
        raise ModelError(
            "A multi-worker job (TF_CONFIG) must create its strategy before TensorFlow runs any op: "
            f"call kvision.train.get_strategy() first. Received: {err}"
        ) from err


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


@contextlib.contextmanager
def worker_dir(path):
    """Yield ``path`` on the chief; on other workers a temporary directory, removed on exit.

    Every worker must run the same saving code (reads of synchronized
    variables are collective ops), but only the chief's files are kept.
    """
    if is_chief():
        yield Path(path)
        return
    scratch = tempfile.mkdtemp(prefix="kvision-worker-")
    try:
        yield Path(scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def global_batch_size(strategy, batch_size, num_examples):
    """``batch_size`` per replica × replicas, checked against the ``num_examples`` it must fit in."""
    global_batch = batch_size * strategy.num_replicas_in_sync
    if num_examples < global_batch:
        raise ModelError(
            f"The training split must hold at least one global batch of {global_batch} "
            f"examples. Received: {num_examples} examples"
        )
    return global_batch


def _is_multi_worker(strategy):
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and strategy.extended._in_multi_worker_mode()


def _fix_keras_multi_worker_fit():
    """Make Keras 3's ``fit``/``evaluate`` work under a multi-worker ``MultiWorkerMirroredStrategy``.

    Keras 3 (checked up to 3.15.1) fails there twice, before the first step
    (tensorflow/tensorflow#72388, keras-team/keras#20585):

    * ``_maybe_symbolic_build`` all-reduces a whole input batch, a nested
      structure, only to read its shapes; the collective strategy reduces
      single values ("Attempt to convert a value (PerReplica…)"). One local
      replica's batch has the same shapes, so it is used instead.
    * the step's scalar logs are reduced with ``strategy.reduce("MEAN", v,
      axis=0)``, which has no axis 0 ("Invalid reduction dimension 0 for
      input with 0 dimensions"). They are all-reduced across replicas
      (``axis=None``), as the single-worker path averages them.

    Both replacements act only in multi-worker mode; everything else goes to
    Keras unchanged. Called once, by ``_multi_worker_strategy``. ``tests/test_launch.py`` trains two real workers through
    ``fit``, so a Keras upgrade that changes these internals is caught there.
    """
    trainer = keras_tf_trainer.TensorFlowTrainer
    symbolic_build = trainer._maybe_symbolic_build
    reduce_per_replica = keras_tf_trainer.reduce_per_replica

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = self._distribute_strategy
        if iterator is not None and strategy is not None and _is_multi_worker(strategy):
            for _, _, batches in iterator:
                data_batch = tf.nest.map_structure(
                    lambda v: strategy.experimental_local_results(v)[0], next(batches)
                )
                break
            iterator = None
        return symbolic_build(self, iterator=iterator, data_batch=data_batch)

    def reduce_logs(values, strategy, reduction):
        if _is_multi_worker(strategy) and reduction in ("auto", "mean"):
            return keras.tree.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return reduce_per_replica(values, strategy, reduction)

    trainer._maybe_symbolic_build = maybe_symbolic_build
    keras_tf_trainer.reduce_per_replica = reduce_logs
