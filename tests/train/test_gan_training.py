"""fit_gan: sample grids, scalars, checkpoints, and the health check that stops bad runs."""

import csv

import keras
import numpy as np
import pytest
import tensorflow as tf

from kvision.errors import ModelError
from kvision.models import build
from kvision.train.gan import fit_gan, image_grid, mean_pairwise_distance
from tests.helpers import quadrant_images
from tests.train.tensorboard_checks import assert_engine_board


def networks(conditional=True, **discriminator_options):
    classes = 4 if conditional else None
    return (
        lambda: build("dcgan_generator", (16, 16, 1), classes, latent_dim=8, filters=32),
        lambda: build("dcgan_discriminator", (16, 16, 1), classes, filters=8, **discriminator_options),
    )


# The settings of the shared run, which is also the float32 reference of the mixed-precision and XLA runs.
DATA = quadrant_images(64, size=16)
REFERENCE = dict(epochs=2, batch_size=16, verbose=0, seed=1)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("gan") / "run"
    result = fit_gan(*networks(dropout=0.0), DATA, run_dir=run_dir, hparams={"engine": "gan", "epochs": 2}, **REFERENCE)
    return run_dir, result


def test_sample_grids_go_to_png_and_tensorboard(run):
    run_dir, _ = run
    for epoch in (1, 2):
        grid = tf.io.decode_png(tf.io.read_file(str(run_dir / "samples" / f"epoch_{epoch:03d}.png"))).numpy()
        assert grid.shape == (8 * 16, 8 * 16, 1)
    tags = set()
    for event_file in (run_dir / "logs" / "samples").glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            tags |= {value.tag for value in event.summary.value}
    assert "samples (EMA generator, fixed latents)" in tags


def test_losses_and_discriminator_accuracies_are_logged(run):
    run_dir, result = run
    with open(run_dir / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2
    for key in ("d_loss", "g_loss", "d_real_accuracy", "d_fake_accuracy"):
        assert len(result.history[key]) == 2 and all(np.isfinite(float(row[key])) for row in rows)
        if key.endswith("accuracy"):
            assert all(0 <= float(row[key]) <= 1 for row in rows)


def test_networks_are_checkpointed_and_reload(run):
    run_dir, result = run
    ema = keras.saving.load_model(run_dir / "checkpoints" / "generator_ema.keras")
    inputs = [tf.random.normal((2, 8)), tf.constant([0, 3])]
    np.testing.assert_allclose(ema(inputs), result.gan.ema_generator(inputs), atol=1e-6)
    assert (run_dir / "checkpoints" / "discriminator.keras").exists()
    assert not (run_dir / "backup").exists(), "a finished run deletes its backup"


def test_the_graph_and_hparams_go_to_tensorboard(run):
    run_dir, _ = run
    assert_engine_board(run_dir / "logs", "gan", "Conv2DBackpropInput", 2)


def test_grid_and_spread_helpers():
    images = np.arange(5 * 2 * 2 * 1, dtype=np.uint8).reshape(5, 2, 2, 1)
    grid = image_grid(images, columns=3)
    assert grid.shape == (4, 6, 1)
    np.testing.assert_array_equal(grid[2:4, 0:2], images[3])
    np.testing.assert_array_equal(grid[2:4, 2:4], images[4])
    assert not grid[2:4, 4:6].any(), "the missing last cell is black"
    assert mean_pairwise_distance(np.ones((4, 3))) == 0
    assert mean_pairwise_distance(np.array([[0.0, 0.0], [3.0, 4.0]])) == pytest.approx(5.0)


def test_nan_losses_stop_training_before_any_checkpoint(tmp_path):
    with pytest.raises(ModelError, match=r"GAN training diverged at epoch 1, step \d+.*Expected finite losses. Received: .*nan"):
        fit_gan(*networks(), DATA, run_dir=tmp_path, epochs=2, batch_size=16,
                d_learning_rate=float("nan"), verbose=0)
    assert not (tmp_path / "checkpoints").exists()


def test_mode_collapse_stops_training_before_the_epoch_is_checkpointed(tmp_path):
    def collapsed_generator():
        noise = keras.Input((8,), name="noise")
        label = keras.Input((), dtype="int32", name="label")
        zero = keras.layers.Dense(16 * 16, kernel_initializer="zeros", trainable=False)(noise)
        image = keras.layers.Reshape((16, 16, 1))(keras.layers.Dense(16 * 16, activation="tanh")(zero))
        mixed = keras.layers.Add()([image, keras.layers.Reshape((16, 16, 1))(keras.layers.Embedding(4, 256)(label)) * 0.0])
        return keras.Model([noise, label], mixed)

    with pytest.raises(ModelError, match=r"The generator collapsed at epoch 1.*Received: 0\.000"):
        fit_gan(collapsed_generator, networks()[1], DATA, run_dir=tmp_path, epochs=2,
                batch_size=16, collapse_min_steps=0, verbose=0)
    assert not (tmp_path / "checkpoints" / "generator_ema.keras").exists()


def test_a_killed_run_resumes_at_the_epoch_it_reached(tmp_path):
    from tests.train.test_engine import InterruptAtEpoch

    with pytest.raises(KeyboardInterrupt):
        fit_gan(*networks(), DATA, run_dir=tmp_path, epochs=2, batch_size=16, verbose=0, callbacks=[InterruptAtEpoch(1)])
    after_one = keras.saving.load_model(tmp_path / "checkpoints" / "generator_ema.keras").get_weights()
    seen = []
    resumed = fit_gan(*networks(), DATA, run_dir=tmp_path, epochs=2, batch_size=16, verbose=0,
                      callbacks=[keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: seen.append(epoch))])
    assert seen == [1], "only the missing epoch runs"
    assert int(resumed.gan.g_optimizer.iterations) == 2 * 4, "optimizer state came back with the weights"
    with open(tmp_path / "history.csv", newline="") as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["0", "1"]
    assert any(np.any(a != b) for a, b in zip(after_one, resumed.gan.ema_generator.get_weights()))


def test_mixed_precision_and_xla_train_like_float32(run, tmp_path):
    """Same seed and data: mixed_float16 losses within 2%, XLA within 3% of the float32 run's (the shared run).

    Looser than for a classifier: XLA's forward pass differs from the default
    kernels by rounding only (~1e-6 here), but Adam turns rounding-level
    differences in near-zero gradients into learning-rate-sized steps and the
    two networks' game amplifies them (1.8% on g_loss after 8 steps).
    """
    _, plain = run
    mixed = fit_gan(*networks(dropout=0.0), DATA, run_dir=tmp_path / "mixed", mixed_precision=True, **REFERENCE)
    xla = fit_gan(*networks(dropout=0.0), DATA, run_dir=tmp_path / "xla", xla=True, **REFERENCE)
    assert isinstance(mixed.gan.d_optimizer, keras.optimizers.LossScaleOptimizer)
    assert mixed.gan.generator.get_layer("image").compute_dtype == "float32"
    assert {layer.compute_dtype for layer in mixed.gan.discriminator.layers[1:-1]} >= {"float16"}
    assert keras.mixed_precision.dtype_policy().name == "float32", "the global policy is restored"
    assert xla.gan.jit_compile
    for key in ("d_loss", "g_loss"):
        np.testing.assert_allclose(mixed.history[key], plain.history[key], rtol=0.02)
        np.testing.assert_allclose(xla.history[key], plain.history[key], rtol=0.03)
