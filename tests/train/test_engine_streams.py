"""The engine on streamed splits: the same steps and learning as in memory, on 2 replicas, bad images named or skipped."""

import keras
import numpy as np
import pytest

from kvision.errors import DataError
from kvision.train import AdversarialTraining, Distiller, fit_classifier, fine_tune, load_teacher
from tests.data.streams import memory_split
from tests.helpers import TF_KERNELS, quadrant_images, run_on_two_cpus, small_cnn

TRAIN = quadrant_images(96, seed=1)
VAL = quadrant_images(40, seed=2)
# Two epochs show learning; the TensorBoard figures on streams are tests/train/test_tensorboard.py's subject.
COMMON = dict(epochs=2, batch_size=16, learning_rate=0.05, schedule="constant", crop_padding=0, flip=False, seed=3,
              figure_examples=0, verbose=0)
STEPS = [96 // 16] * 2  # steps of each epoch of TRAIN


class CountSteps(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.steps = []

    def on_epoch_begin(self, epoch, logs=None):
        self.steps.append(0)

    def on_train_batch_end(self, batch, logs=None):
        self.steps[-1] += 1


def test_streamed_training_matches_in_memory(tmp_path):
    """PNG streams of the same images: same steps per epoch, a loss curve close to the in-memory one."""
    runs = {}
    for name, train, val in (("memory", TRAIN, VAL), ("stream", memory_split(*TRAIN), memory_split(*VAL))):
        counter = CountSteps()
        result = fit_classifier(small_cnn, train, val, run_dir=tmp_path / name, callbacks=[counter], **COMMON)
        runs[name] = counter.steps, result.history
    assert runs["stream"][0] == runs["memory"][0] == STEPS
    memory, stream = runs["memory"][1], runs["stream"][1]
    # Same initial loss; both learn the quadrants (the orders of examples differ, so the curves are not equal).
    np.testing.assert_allclose(stream["loss"][0], memory["loss"][0], rtol=0.15)
    assert stream["loss"][-1] < 0.5 * stream["loss"][0] and memory["loss"][-1] < 0.5 * memory["loss"][0]
    assert len(stream["val_accuracy"]) == 2 and stream["val_accuracy"][-1] >= 0.6


def test_inception_crops_need_a_stream(tmp_path):
    with pytest.raises(DataError, match="Expected a streamed training split for crop='inception'. Received: arrays"):
        fit_classifier(small_cnn, TRAIN, run_dir=tmp_path, crop="inception", **COMMON)
    assert not tmp_path.joinpath("checkpoints").exists()


def test_a_corrupt_image_stops_training_naming_it(tmp_path):
    with pytest.raises(DataError, match=r"^img0007.png: expected a JPEG, PNG, GIF or BMP image. Received: "):
        fit_classifier(small_cnn, memory_split(*TRAIN, corrupt=(7,)), run_dir=tmp_path, **COMMON)


def test_skip_bad_images_trains_on_the_rest(tmp_path):
    """94 good images still fill every epoch's 6 batches of 16: the stream repeats past the skipped ones."""
    counter = CountSteps()
    result = fit_classifier(small_cnn, memory_split(*TRAIN, corrupt=(7, 50)), memory_split(*VAL, corrupt=(0,)),
                            run_dir=tmp_path, skip_bad_images=True, callbacks=[counter], **COMMON)
    assert counter.steps == STEPS and np.isfinite(result.history["val_loss"]).all()


@pytest.mark.parametrize("technique", ["distillation", "adversarial"])
def test_training_wrappers_take_a_stream(tmp_path, technique):
    """Distillation and adversarial training wrap the network on a stream as on arrays; the result is the plain network."""
    if technique == "distillation":
        small_cnn().save(tmp_path / "teacher.keras")
        wrap = lambda student: Distiller(student, load_teacher(tmp_path / "teacher.keras"), temperature=2.0, alpha=0.5)
    else:
        wrap = lambda network: AdversarialTraining(network, epsilon=0.05, steps=1)
    counter = CountSteps()
    result = fit_classifier(small_cnn, memory_split(*TRAIN), memory_split(*VAL), run_dir=tmp_path / technique,
                            wrap=wrap, callbacks=[counter], **COMMON)
    assert counter.steps == STEPS
    assert not isinstance(result.model, (Distiller, AdversarialTraining)) and result.model.output_shape == (None, 4)
    assert np.isfinite(result.history["loss"]).all() and result.history["loss"][-1] < result.history["loss"][0]
    assert len(result.history["val_accuracy"]) == 2


def test_fine_tune_takes_a_stream(tmp_path):
    result = fine_tune("cnn", memory_split(*TRAIN), run_dir=tmp_path, input_shape=(16, 16, 1), num_classes=4,
                       backbone_options=dict(filters=(8, 16), convs_per_block=1, dense_units=32), head_epochs=1,
                       epochs=1, batch_size=16, verbose=0)
    assert result.model.output_shape == (None, 4) and (tmp_path / "finetune").is_dir()
    with pytest.raises(Exception, match="input_shape and num_classes"):
        fine_tune("cnn", memory_split(*TRAIN), run_dir=tmp_path / "other", epochs=1)


TWO_REPLICAS_SCRIPT = """
from pathlib import Path
import keras
import tensorflow as tf
from kvision.train import fit_classifier
from tests.data.streams import memory_split
from tests.helpers import quadrant_images, small_cnn
from tests.train.test_engine_streams import COMMON, CountSteps, TRAIN, VAL
out = {}
for name, devices in (("one", ["/cpu:0"]), ("two", ["/cpu:0", "/cpu:1"])):
    counter = CountSteps()
    result = fit_classifier(lambda: small_cnn(batch_norm=False, dropout=0.0, dense_dropout=0.0),
                            memory_split(*TRAIN), memory_split(*VAL), run_dir=Path(sys.argv[1]) / name,
                            strategy=tf.distribute.MirroredStrategy(devices), callbacks=[counter],
                            **{**COMMON, "batch_size": 16 // len(devices)})
    out[name] = {"steps": counter.steps, "loss": result.history["loss"], "val_accuracy": result.history["val_accuracy"]}
print(json.dumps(out))
"""


@pytest.mark.slow
def test_two_replicas_read_disjoint_parts_and_train_as_one(tmp_path):
    """Same global batch on 1 and 2 logical CPUs: same steps per epoch, close losses (each replica reads its own part)."""
    runs = run_on_two_cpus(TWO_REPLICAS_SCRIPT, tmp_path, env=TF_KERNELS)
    assert runs["one"]["steps"] == runs["two"]["steps"] == STEPS
    np.testing.assert_allclose(runs["two"]["loss"], runs["one"]["loss"], rtol=0.3)
    assert runs["two"]["loss"][-1] < runs["two"]["loss"][0]


@pytest.mark.slow
def test_a_tf_data_service_produces_the_training_stream(tmp_path):
    from kvision.data.service import LocalService

    service = LocalService(workers=1)
    try:
        counter = CountSteps()
        result = fit_classifier(small_cnn, memory_split(*TRAIN), memory_split(*VAL), run_dir=tmp_path / "run",
                                callbacks=[counter], data_service=service.address, **COMMON)
    finally:
        service.stop()
    assert counter.steps == STEPS
    assert result.history["loss"][-1] < result.history["loss"][0]
    with pytest.raises(DataError, match="Expected a streamed training split for data_service='grpc://"):
        fit_classifier(small_cnn, TRAIN, run_dir=tmp_path / "arrays", data_service=service.address, **COMMON)
