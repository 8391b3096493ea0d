"""Magnitude pruning: the Zhu & Gupta schedule, exact per-layer sparsity, masks that hold, smaller gzip files.

Pruning under two replicas is checked with distillation, in tests/train/test_distill.py.
"""

import gzip

import keras
import numpy as np
import pytest

from kvision.errors import ModelError
from kvision.train import fit_classifier
from kvision.train.prune import MagnitudePruning, magnitude_mask, model_sizes, prunable_kernels, sparsity
from tests.helpers import quadrant_images, small_cnn

TRAIN = quadrant_images(128, seed=1)
COMMON = dict(batch_size=32, learning_rate=0.05, schedule="constant", crop_padding=0, flip=False, seed=3, verbose=0)
STEPS_PER_EPOCH = 4  # 128 examples, batches of 32


class KernelRecorder(keras.callbacks.Callback):
    """Copies of the prunable kernels after every optimizer step, by step."""

    def __init__(self):
        super().__init__()
        self.kernels = {}

    def on_train_batch_end(self, batch, logs=None):
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        self.kernels[step] = {
            name: keras.ops.convert_to_numpy(kernel).copy() for name, kernel in prunable_kernels(self.model).items()
        }


def zhu_gupta(step, *, initial, final, begin, frequency, updates):
    """s_t = s_f + (s_i − s_f)(1 − (t − t0)/(nΔt))³ at the last update step t ≤ step."""
    t = min(begin + (step - begin) // frequency * frequency, begin + updates * frequency)
    return final + (initial - final) * (1 - (t - begin) / (updates * frequency)) ** 3


def test_the_schedule_is_zhu_and_gupta_cubic():
    pruning = MagnitudePruning(0.8, begin_step=10, end_step=110, frequency=20, initial_sparsity=0.1)
    expected = dict(initial=0.1, final=0.8, begin=10, frequency=20, updates=5)
    assert pruning.sparsity_at(0) == pruning.sparsity_at(9) == 0.0, "nothing is pruned before begin_step"
    for step in (10, 29, 30, 55, 70, 109):
        assert pruning.sparsity_at(step) == pytest.approx(zhu_gupta(step, **expected), abs=1e-12)
    assert pruning.sparsity_at(30) == pytest.approx(0.8 - 0.7 * 0.8**3)
    assert pruning.sparsity_at(110) == pruning.sparsity_at(10_000) == pytest.approx(0.8)
    values = [pruning.sparsity_at(step) for step in range(10, 111)]
    assert values == sorted(values), "sparsity never decreases"


def test_end_step_off_the_update_grid_still_ends_at_the_target():
    pruning = MagnitudePruning(0.5, end_step=25, frequency=10)
    assert pruning.sparsity_at(24) == pytest.approx(0.5 * (1 - (1 - 20 / 25) ** 3))
    assert pruning.sparsity_at(25) == pytest.approx(0.5)


@pytest.fixture(scope="module")
def pruned_run(tmp_path_factory):
    """4 epochs of 4 steps; pruning to 75% every 2 steps, done at step 8; 8 more steps with the final mask."""
    recorder = KernelRecorder()
    pruning = MagnitudePruning(0.75, end_step=8, frequency=2)
    result = fit_classifier(
        small_cnn, TRAIN, run_dir=tmp_path_factory.mktemp("pruned"), epochs=4,
        callbacks=[pruning, recorder], **COMMON,
    )
    return result, recorder.kernels, pruning


def test_each_layer_reaches_the_target_at_end_step(pruned_run):
    result, kernels, pruning = pruned_run
    assert set(kernels[8]) == {"block1_conv1_conv", "block2_conv1_conv", "head_dense"}, "logits is not pruned"
    for step in (2, 8, 16):
        for name, weights in kernels[step].items():
            expected = round(pruning.sparsity_at(step) * weights.size)
            assert abs(np.count_nonzero(weights == 0) - expected) <= 1, (step, name)
    assert pruning.sparsity_at(2) == pytest.approx(0.75 * (1 - 0.75**3))
    assert sparsity(result.model) == pytest.approx(0.75, abs=0.01)
    assert np.count_nonzero(keras.ops.convert_to_numpy(result.model.get_layer("logits").kernel) == 0) == 0


def test_pruned_weights_stay_zero_while_the_rest_train_on(pruned_run):
    result, kernels, _ = pruned_run
    for name, at_end_step in kernels[8].items():
        pruned = at_end_step == 0
        for step in range(9, 17):
            assert np.all(kernels[step][name][pruned] == 0), (step, name)
        assert np.any(kernels[16][name][~pruned] != at_end_step[~pruned]), "the kept weights keep training"
    assert result.history["loss"][-1] < result.history["loss"][0]
    for kernel in prunable_kernels(result.model).values():
        assert kernel.constraint is None, "the masks leave the model when training ends"


def test_a_resumed_run_keeps_its_masks(tmp_path):
    class InterruptAtEpoch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 3:
                raise KeyboardInterrupt

    common = dict(run_dir=tmp_path, epochs=4, **COMMON)
    with pytest.raises(KeyboardInterrupt):
        fit_classifier(small_cnn, TRAIN, callbacks=[MagnitudePruning(0.6, end_step=8, frequency=4),
                                                    InterruptAtEpoch()], **common)
    recorder = KernelRecorder()
    resumed = fit_classifier(small_cnn, TRAIN, callbacks=[MagnitudePruning(0.6, end_step=8, frequency=4), recorder],
                             **common)
    assert sorted(recorder.kernels) == [13, 14, 15, 16], "only the last epoch ran again"
    for weights in recorder.kernels[16].values():
        assert abs(np.count_nonzero(weights == 0) - round(0.6 * weights.size)) <= 1
    assert sparsity(resumed.model) == pytest.approx(0.6, abs=0.01)


def test_default_end_step_is_two_thirds_of_the_run(tmp_path):
    pruning = MagnitudePruning(0.5, frequency=1)
    fit_classifier(small_cnn, TRAIN, run_dir=tmp_path, epochs=3, callbacks=[pruning], **COMMON)
    assert pruning.end_step == 8  # of 12 steps


def test_a_pruned_model_compresses_better():
    model = small_cnn()
    dense = model_sizes(model)
    for kernel in prunable_kernels(model).values():
        weights = keras.ops.convert_to_numpy(kernel)
        kernel.assign(weights * magnitude_mask(weights, 0.8))
    assert sparsity(model) == pytest.approx(0.8, abs=0.001)
    pruned = model_sizes(model)
    assert pruned["bytes"] == dense["bytes"] == 4 * model.count_params(), "zeros take as much room uncompressed"
    assert pruned["gzip_bytes"] < 0.6 * dense["gzip_bytes"]


def test_model_sizes_of_files_and_bytes(tmp_path):
    content = bytes(1000) + bytes(range(256))
    (tmp_path / "model.tflite").write_bytes(content)
    expected = {"bytes": 1256, "gzip_bytes": len(gzip.compress(content, compresslevel=9, mtime=0))}
    assert model_sizes(content) == model_sizes(tmp_path / "model.tflite") == expected
    assert expected["gzip_bytes"] < 400
    with pytest.raises(ModelError, match="Expected a Keras model, a model file or its bytes"):
        model_sizes(tmp_path / "missing.tflite")


def test_magnitude_mask_drops_the_smallest_magnitudes():
    weights = np.array([[0.5, -0.1], [-2.0, 0.05], [0.3, -0.4]], np.float32)
    np.testing.assert_array_equal(magnitude_mask(weights, 0.5), [[1, 0], [1, 0], [0, 1]])
    np.testing.assert_array_equal(magnitude_mask(weights, 0.0), np.ones((3, 2)))


def test_layer_choice_and_bad_options_are_explained():
    model = small_cnn()
    assert list(prunable_kernels(model, ["head_dense", "logits"])) == ["head_dense", "logits"]
    with pytest.raises(ModelError, match="with a kernel, among: block1_conv1_conv.*Received: layers=\\['head'\\]"):
        prunable_kernels(model, ["head_dense", "head"])
    inputs = keras.Input((4,))
    with pytest.raises(ModelError, match="kernels besides its logits. Received: model='linear', kernels=\\['logits'\\]"):
        sparsity(keras.Model(inputs, keras.layers.Dense(2, name="logits")(inputs), name="linear"))
    model.trainable = False
    assert sparsity(model) == 0.0, "a frozen model is measured too"
    with pytest.raises(ModelError, match="0 <= initial_sparsity <= target_sparsity < 1"):
        MagnitudePruning(1.0)
    with pytest.raises(ModelError, match="end_step must be a step after begin_step"):
        MagnitudePruning(0.5, begin_step=10, end_step=10)
    with pytest.raises(ModelError, match="frequency must be a positive number of steps"):
        MagnitudePruning(0.5, frequency=0)
