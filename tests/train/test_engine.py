"""The engine: strategies agree, runs resume, options take effect."""

import csv
import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from kvision.data import make_pipeline
from kvision.errors import ModelError
from kvision.models import build
from kvision.train import Distiller, apply_weight_decay, compile_run, fit_classifier, fit_or_load, get_strategy
from kvision.train.callbacks import TrainingClock, best_so_far, epoch_weights_path, run_paths
from kvision.train.engine import (
    average_epoch_weights,
    build_with_policy,
    dtype_policy,
    finished_checkpoint,
    float32_twin,
    repeat_epochs,
)
from tests.helpers import quadrant_images, small_cnn

TRAIN = quadrant_images(128, seed=1)
VAL = quadrant_images(32, seed=2)
DETERMINISTIC = dict(crop_padding=0, flip=False, seed=3, verbose=0)


class InterruptAtEpoch(keras.callbacks.Callback):
    """Stands in for a killed process: raises when ``epoch`` is about to start."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt(f"interrupted before epoch {epoch}")


def test_two_replicas_match_one_device(tmp_path):
    """Same initial weights and global batch: 2 logical CPUs follow 1 device's loss curve."""
    # No BatchNorm or dropout: their per-replica statistics and noise would differ by design.
    model_fn = lambda: small_cnn(batch_norm=False, dropout=0.0, dense_dropout=0.0)  # noqa: E731
    common = dict(epochs=2, optimizer="sgd", learning_rate=0.05, schedule="constant", **DETERMINISTIC)
    # The baseline is a 1-device MirroredStrategy, not the default strategy: under any
    # tf.distribute strategy Keras peeks one batch to build the model, which advances the
    # reshuffling seed, so both runs must take that path to see the same example order.
    single = fit_classifier(
        model_fn, TRAIN, run_dir=tmp_path / "one", batch_size=16, strategy=get_strategy(["/cpu:0"]), **common
    )
    mirrored = fit_classifier(
        model_fn,
        TRAIN,
        run_dir=tmp_path / "two",
        batch_size=8,
        strategy=get_strategy(["/cpu:0", "/cpu:1"]),
        **common,
    )
    assert mirrored.strategy.num_replicas_in_sync == 2
    np.testing.assert_allclose(mirrored.history["loss"], single.history["loss"], rtol=1e-4)
    assert single.history["loss"][-1] < single.history["loss"][0]
    for a, b in zip(single.model.get_weights(), mirrored.model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


# A run of 3 epochs with validation, killed before its last: the tests below each resume a copy of it.
RESUMABLE = dict(epochs=3, batch_size=32, learning_rate=0.05, schedule="constant", **DETERMINISTIC)


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("interrupted") / "run"
    with pytest.raises(KeyboardInterrupt):
        fit_classifier(small_cnn, TRAIN, VAL, run_dir=run_dir, callbacks=[InterruptAtEpoch(2)], **RESUMABLE)
    return run_dir


def copy_of(interrupted, tmp_path):
    """A fresh copy of the interrupted run's directory, for one test to resume."""
    return Path(shutil.copytree(interrupted, tmp_path / "run"))


def test_interrupted_run_resumes_at_the_epoch_it_reached(interrupted, tmp_path):
    run_dir = copy_of(interrupted, tmp_path)
    assert (run_dir / "backup").exists()

    resumed = fit_classifier(small_cnn, TRAIN, VAL, run_dir=run_dir, **RESUMABLE)
    assert len(resumed.history["loss"]) == 1, "epochs 0 and 1 must not run again"
    with open(run_dir / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(row["epoch"]) for row in rows] == [0, 1, 2]
    seconds = [float(row["train_seconds"]) for row in rows]
    assert 0 < seconds[0] < seconds[1] < seconds[2], "training time goes on from the interrupted run's"
    assert not (run_dir / "backup").exists(), "a finished run removes its backup"
    assert resumed.history["val_accuracy"][-1] >= 0.5, "quadrant images are easy to learn"
    # The best checkpoint is the best of all three epochs, not of the one after the resume.
    best = keras.models.load_model(run_dir / "checkpoints" / "best.keras")
    val = make_pipeline(*VAL, batch_size=32, training=False, num_classes=4)
    best_accuracy = best.evaluate(val, verbose=0, return_dict=True)["accuracy"]
    assert best_accuracy == pytest.approx(best_so_far(run_dir / "history.csv", "val_accuracy"))
    assert (run_dir / "checkpoints" / "last.keras").exists()
    for a, b in zip(best.get_weights(), resumed.model.get_weights()):
        np.testing.assert_array_equal(a, b, "the returned model holds the best weights")


def test_the_training_clock_adds_this_fit_to_the_time_the_history_holds(tmp_path, monkeypatch):
    history = tmp_path / "history.csv"
    history.write_text("epoch,loss,train_seconds\n0,1.0,4.5\n1,0.9,NA\n2,0.8,10.25\n")
    clock = TrainingClock(history)
    ticks = iter([100.0, 107.0, 111.5])
    monkeypatch.setattr("kvision.train.callbacks.time.perf_counter", lambda: next(ticks))
    clock.on_train_begin()
    logs = [{}, {}]
    clock.on_epoch_end(3, logs[0])
    clock.on_epoch_end(4, logs[1])
    assert [log["train_seconds"] for log in logs] == [17.25, 21.75]
    fresh = TrainingClock(tmp_path / "none.csv")
    monkeypatch.setattr("kvision.train.callbacks.time.perf_counter", iter([5.0, 6.5]).__next__)
    fresh.on_train_begin()
    fresh.on_epoch_end(0, logs[0])
    assert logs[0]["train_seconds"] == 1.5


def test_learning_rate_follows_the_schedule_into_the_history(tmp_path):
    result = fit_classifier(
        small_cnn, TRAIN, run_dir=tmp_path, epochs=2, batch_size=32, learning_rate=0.1,
        schedule="piecewise", boundaries=(0.5,), **DETERMINISTIC,
    )
    # 4 steps an epoch; the rate drops ÷10 after step 4, so epoch 1 ends at the lower one.
    np.testing.assert_allclose(result.history["learning_rate"], [0.1, 0.01], rtol=1e-6)
    assert "learning_rate" in (tmp_path / "history.csv").read_text().splitlines()[0]


# Dropout is off: its masks are drawn differently in float16 (and under XLA), which would make the runs differ by
# more than precision.
COMPARED = dict(epochs=3, batch_size=32, learning_rate=0.05, schedule="constant", **DETERMINISTIC)


def no_dropout_cnn():
    return small_cnn(dropout=0.0, dense_dropout=0.0)


@pytest.fixture(scope="module")
def float32_run(tmp_path_factory):
    """The reference run of the mixed-precision and XLA runs below."""
    return fit_classifier(no_dropout_cnn, TRAIN, run_dir=tmp_path_factory.mktemp("fp32"), **COMPARED)


def test_mixed_precision_trains_close_to_float32(float32_run, tmp_path):
    """float16 compute with loss scaling follows the float32 loss curve within 1%."""
    mixed = fit_classifier(no_dropout_cnn, TRAIN, run_dir=tmp_path, mixed_precision=True, **COMPARED)
    assert mixed.model.get_layer("block1_conv1_conv").compute_dtype == "float16"
    assert isinstance(mixed.model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert keras.mixed_precision.dtype_policy().name == "float32", "the global policy is restored"
    assert mixed.model.output.dtype == "float32"
    np.testing.assert_allclose(mixed.history["loss"], float32_run.history["loss"], rtol=0.01)
    assert mixed.history["loss"][-1] < 0.5 * mixed.history["loss"][0]


def test_bfloat16_trains_close_to_float32_and_serves_in_float32(float32_run, tmp_path):
    """bfloat16 compute needs no loss scaling; its float32 twin holds the same weights and computes in float32."""
    mixed = fit_classifier(no_dropout_cnn, TRAIN, run_dir=tmp_path, mixed_precision="bfloat16", **COMPARED)
    assert mixed.model.get_layer("block1_conv1_conv").compute_dtype == "bfloat16"
    assert not isinstance(mixed.model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert keras.mixed_precision.dtype_policy().name == "float32", "the global policy is restored"
    np.testing.assert_allclose(mixed.history["loss"], float32_run.history["loss"], rtol=0.05)
    assert mixed.history["loss"][-1] < 0.5 * mixed.history["loss"][0]

    twin = float32_twin(mixed.model)
    assert {layer.compute_dtype for layer in twin.layers} == {"float32"}
    for a, b in zip(twin.get_weights(), mixed.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    images = VAL[0].astype("float32")
    exact, rounded = twin.predict(images, verbose=0), mixed.model.predict(images, verbose=0)
    assert exact.dtype == np.float32
    np.testing.assert_allclose(exact, rounded, atol=0.1 * np.abs(exact).max())  # bfloat16 keeps ~3 digits
    assert float32_twin(twin) is twin, "a float32 network is its own twin"


@pytest.mark.parametrize(("setting", "policy"), [
    (False, "float32"), (None, "float32"), (True, "mixed_float16"), ("float16", "mixed_float16"),
    ("bfloat16", "mixed_bfloat16"),
])
def test_dtype_policy_names_keras_policy(setting, policy):
    assert dtype_policy(setting) == policy


@pytest.mark.parametrize("name", ["cnn_fast", "resnet20", "cnn"])  # the Fashion-MNIST presets' models
def test_the_float32_twin_of_a_bfloat16_network_is_exact(name):
    """Every layer cloned in float32 with the trained variables: the float32 build's outputs to the bit."""
    network = build_with_policy(lambda: build(name, (28, 28, 1), 10, mean=[72.9], std=[90.0]), "bfloat16")
    twin = float32_twin(network)
    assert {layer.compute_dtype for layer in twin.layers} == {"float32"}
    assert [layer.name for layer in twin.layers] == [layer.name for layer in network.layers]
    reference = build(name, (28, 28, 1), 10, mean=[72.9], std=[90.0])
    reference.set_weights(network.get_weights())
    images = np.random.default_rng(0).uniform(0, 255, (4, 28, 28, 1)).astype("float32")
    np.testing.assert_array_equal(twin.predict(images, verbose=0), reference.predict(images, verbose=0))


def test_an_unknown_mixed_precision_is_a_clear_error():
    with pytest.raises(ModelError, match=r"one of \('float16', 'bfloat16'\).*Received: 'float8'"):
        dtype_policy("float8")


def test_xla_trains_like_the_default_compiler(float32_run, tmp_path):
    xla = fit_classifier(no_dropout_cnn, TRAIN, run_dir=tmp_path, xla=True, **COMPARED)
    assert xla.model.jit_compile
    np.testing.assert_allclose(xla.history["loss"], float32_run.history["loss"], rtol=1e-3)


def test_weight_decay_is_the_l2_penalty_on_kernels():
    model = small_cnn()
    apply_weight_decay(model, 1e-2)
    kernels = [layer.kernel for layer in model.layers if hasattr(layer, "kernel")]
    expected = sum(0.5 * 1e-2 * float(tf.reduce_sum(tf.square(k))) for k in kernels)
    assert len(model.losses) == len(kernels) > 0
    np.testing.assert_allclose(float(sum(model.losses)), expected, rtol=1e-5)


@pytest.mark.parametrize("optimizer, penalised", [("sgd", True), ("adam", True), ("adamw", False)])
def test_compile_run_decays_trainable_kernels_once(optimizer, penalised):
    """L2 on the student's kernels for sgd/adam, none for adamw (decoupled), never on a frozen teacher."""
    student, teacher = small_cnn(), small_cnn()
    distiller = Distiller(student, teacher)
    compile_run(distiller, steps_per_epoch=4, epochs=2, optimizer=optimizer, learning_rate=0.1, weight_decay=1e-2)
    kernels = [layer.kernel for layer in student.layers if hasattr(layer, "kernel")]
    expected = sum(0.5 * 1e-2 * float(tf.reduce_sum(tf.square(k))) for k in kernels) if penalised else 0.0
    assert len(distiller.losses) == len(kernels), "the teacher's kernels get no penalty"
    np.testing.assert_allclose(float(sum(distiller.losses)), expected, rtol=1e-5)
    assert isinstance(distiller.optimizer, keras.optimizers.AdamW) == (optimizer == "adamw")


def test_too_little_data_for_one_batch_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="at least one global batch of 64.*Received: 10 examples"):
        fit_classifier(small_cnn, quadrant_images(10), run_dir=tmp_path, batch_size=64, verbose=0)


def test_best_so_far_reads_the_lowest_value_in_min_mode(tmp_path):
    history = tmp_path / "history.csv"
    history.write_text("epoch,loss\n0,0.9\n1,0.4\n2,0.6\n")
    assert best_so_far(history, "loss", "min") == pytest.approx(0.4)
    assert best_so_far(history, "loss") == pytest.approx(0.9)


def test_finished_checkpoint_is_what_a_finished_run_returned(tmp_path, capsys):
    paths = run_paths(tmp_path)
    paths["best"].parent.mkdir()
    assert finished_checkpoint(tmp_path, 2) is None, "no marker: not finished"
    paths["finished"].write_text('{"epochs": 2}')
    paths["best"].touch()
    paths["last"].touch()
    assert finished_checkpoint(tmp_path, 3) is None, "2 of 3 epochs"
    assert finished_checkpoint(tmp_path, 3, early_stopping=True) == paths["best"], "stopped early"
    assert finished_checkpoint(tmp_path, 2, restored_best=False) == paths["last"]
    assert f"{tmp_path}: training finished earlier (2 epochs); loading last.keras" in capsys.readouterr().out
    paths["best"].unlink()
    assert finished_checkpoint(tmp_path, 2) is None, "nothing to load: train"


def test_a_finished_run_is_marked_before_its_backup_goes(interrupted, tmp_path, monkeypatch):
    """A kill between the marker and the backup's removal leaves a finished run, loaded instead of trained again."""
    run_dir = copy_of(interrupted, tmp_path)
    monkeypatch.setattr("shutil.rmtree", lambda *args, **kwargs: None)  # the process "dies" before removing it
    fit_classifier(small_cnn, TRAIN, VAL, run_dir=run_dir, **RESUMABLE)
    paths = run_paths(run_dir)
    assert paths["backup"].exists() and json.loads(paths["finished"].read_text()) == {"epochs": 3}
    history = paths["history"].read_text()
    again = fit_or_load(small_cnn, TRAIN, VAL, run_dir=run_dir, **RESUMABLE)
    assert again.history == {} and paths["history"].read_text() == history, "not trained again"


@pytest.mark.parametrize("killed", ["after the row", "before the row"])
def test_a_run_killed_at_an_epoch_end_has_each_epoch_once(interrupted, tmp_path, killed):
    """Killed between the epoch's CSV row and its backup, in either order: resumed, every epoch is logged once.

    The on-disk state of each kill is made from a run interrupted after epoch 2 of 3 (its backup holds
    2 epochs): a row of epoch 3 the backup never got, or epoch 2's row missing although the backup has it.
    """
    run_dir = copy_of(interrupted, tmp_path)
    history = run_paths(run_dir)["history"]
    header, first, second = history.read_text().splitlines()
    if killed == "after the row":
        history.write_text(f"{header}\n{first}\n{second}\n2{second[1:]}\n")
    else:
        history.write_text(f"{header}\n{first}\n")
    resumed = fit_classifier(small_cnn, TRAIN, VAL, run_dir=run_dir, **RESUMABLE)
    assert len(resumed.history["loss"]) == 1, "only epoch 3 is trained"
    lines = history.read_text().splitlines()
    assert [line.split(",")[0] for line in lines] == ["epoch", "0", "1", "2"]
    assert lines[:3] == [header, first, second], "epoch 2's row, as the backup recorded it"


def test_average_epoch_weights_is_the_exact_mean_of_the_last_epochs(tmp_path):
    model = small_cnn()
    rng = np.random.default_rng(0)
    saved = {}
    for epoch in (1, 2, 3, 4):
        saved[epoch] = [rng.normal(epoch, 1.0, w.shape).astype(w.dtype) for w in model.get_weights()]
        model.set_weights(saved[epoch])
        model.save_weights(epoch_weights_path(tmp_path, epoch))
    assert average_epoch_weights(model, tmp_path, last=3, through=4) == (2, 3, 4)
    for got, *values in zip(model.get_weights(), saved[2], saved[3], saved[4]):
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, ((np.float64(values[0]) + values[1] + values[2]) / 3).astype(np.float32))
    with pytest.raises(ModelError, match=r"epochs 0 to 4 in .*Received: 4 epochs trained"):
        average_epoch_weights(model, tmp_path, last=5, through=4)
    epoch_weights_path(tmp_path, 3).unlink()
    with pytest.raises(ModelError, match="Received: missing epoch0003.weights.h5"):
        average_epoch_weights(model, tmp_path, last=2, through=4)


def test_repeat_epochs_keeps_one_iterator_over_exact_reshuffled_epochs():
    """A finite pipeline becomes a repeated one of the same epochs: each pass every example once, reshuffled."""
    labels = np.arange(40)
    images = np.zeros((40, 4, 4, 1), np.uint8)
    dataset, steps = repeat_epochs(make_pipeline(images, labels, batch_size=8, training=True, seed=5),
                                   tf.distribute.get_strategy())
    assert steps == 5
    batches = [batch_labels.numpy() for _, batch_labels in dataset.take(3 * steps)]
    epochs = [np.concatenate(batches[i * steps:(i + 1) * steps]) for i in range(3)]
    for epoch in epochs:
        np.testing.assert_array_equal(np.sort(epoch), labels)
    assert not np.array_equal(epochs[0], epochs[1]) and not np.array_equal(epochs[1], epochs[2])


@pytest.mark.parametrize("dataset", [
    tf.data.Dataset.range(4).repeat(),  # infinite
    tf.data.Dataset.range(8).filter(lambda x: x % 2 == 0),  # unknown length
    np.zeros((4, 2)),  # not a tf.data.Dataset
])
def test_repeat_epochs_leaves_what_it_cannot_count(dataset):
    same, steps = repeat_epochs(dataset, tf.distribute.get_strategy())
    assert same is dataset and steps is None


def test_repeat_epochs_leaves_a_peeking_strategy_s_input():
    dataset = tf.data.Dataset.range(4).batch(2)
    same, steps = repeat_epochs(dataset, get_strategy(["/cpu:0"]))
    assert same is dataset and steps is None
