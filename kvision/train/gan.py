"""Training a ``GAN`` with ``fit``: strategy, pipeline, and the callbacks a GAN run needs.

Besides the engine's TensorBoard scalars, CSV history and ``BackupAndRestore``,
a GAN run gets an 8×8 grid of samples from fixed latents every epoch (in
TensorBoard and as PNG), ``.keras`` checkpoints of the three networks, and a
health check that stops training with a clear message when a loss turns
NaN/inf or the generator collapses to one output, before anything of that
epoch is checkpointed.
"""

import dataclasses
import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from kvision.data import make_pipeline
from kvision.errors import ModelError
from kvision.models.gan import GAN, to_uint8
from kvision.train.callbacks import SharedBackupAndRestore, run_paths, start_history
from kvision.train.engine import build_with_policy, finished_checkpoint, repeat_epochs
from kvision.train.strategy import get_strategy, global_batch_size, worker_dir
from kvision.train.tensorboard import parse_profile_batches, tensorboard_callbacks

GRID = 8


def gan_paths(run_dir):
    """The files and folders of a GAN run directory, by role: those of ``run_paths`` but best/last, and its own."""
    paths = {role: path for role, path in run_paths(run_dir).items() if role not in ("best", "last")}
    return {**paths, "samples": Path(run_dir) / "samples", "checkpoints": Path(run_dir) / "checkpoints"}


def image_grid(images, columns=GRID):
    """uint8 ``[N, H, W, C]`` images tiled row by row into one ``[rows·H, columns·W, C]`` image."""
    count, height, width, channels = images.shape
    rows = -(-count // columns)
    padded = np.zeros((rows * columns, height, width, channels), np.uint8)
    padded[:count] = images
    return padded.reshape(rows, columns, height, width, channels).transpose(0, 2, 1, 3, 4).reshape(
        rows * height, columns * width, channels
    )


def fixed_inputs(gan, *, seed=1234):
    """64 fixed latents (and labels: row ``r`` asks for class ``r mod classes``) for sample grids."""
    noise = np.random.default_rng(seed).standard_normal((GRID * GRID, gan.latent_dim)).astype(np.float32)
    labels = np.repeat(np.arange(GRID) % gan.num_classes, GRID).astype(np.int32) if gan.conditional else None
    return noise, labels


def mean_pairwise_distance(images):
    """Mean L2 distance between all pairs of ``images`` (float, any range)."""
    flat = np.asarray(images, np.float64).reshape(len(images), -1)
    squared = np.sum(flat**2, axis=1)
    distances = np.sqrt(np.maximum(squared[:, None] + squared[None, :] - 2 * flat @ flat.T, 0))
    return float(distances.sum() / (len(flat) * (len(flat) - 1)))


class SampleGrid(keras.callbacks.Callback):
    """Every epoch: the EMA generator's 8×8 grid from fixed inputs, to TensorBoard and ``samples/epoch_NNN.png``."""

    def __init__(self, noise, labels, log_dir, samples_dir):
        super().__init__()
        self.noise, self.labels = noise, labels
        self.samples_dir = Path(samples_dir)
        self.writer = tf.summary.create_file_writer(str(Path(log_dir) / "samples"))

    def on_epoch_end(self, epoch, logs=None):
        images = self.model.ema_generator.predict(self.model.sample_inputs(self.noise, self.labels), verbose=0)
        grid = image_grid(to_uint8(images).numpy())
        self.samples_dir.mkdir(parents=True, exist_ok=True)
        tf.io.write_file(str(self.samples_dir / f"epoch_{epoch + 1:03d}.png"), tf.io.encode_png(grid))
        with self.writer.as_default():
            tf.summary.image("samples (EMA generator, fixed latents)", grid[None], step=epoch)
        self.writer.flush()


class TrainingHealth(keras.callbacks.Callback):
    """Stops training with ``ModelError`` on NaN/inf losses or mode collapse, before checkpoints are written.

    Collapse: once the generator has taken ``min_steps`` steps (an untrained
    generator draws near-constant images), the mean pairwise distance of its
    samples from fixed inputs falls below ``collapse_ratio`` × that of real
    images. Must come first among the callbacks so it runs before the
    checkpoints.
    """

    def __init__(self, noise, labels, real_images, *, collapse_ratio=0.1, min_steps=1000):
        super().__init__()
        self.noise, self.labels = noise, labels
        self.real_spread = mean_pairwise_distance(np.asarray(real_images, np.float32) / 127.5 - 1.0)
        self.collapse_ratio = collapse_ratio
        self.min_steps = min_steps
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        bad = {k: v for k, v in (logs or {}).items() if k.endswith("loss") and not np.isfinite(float(v))}
        if bad:
            raise ModelError(
                f"GAN training diverged at epoch {self.epoch + 1}, step {batch + 1}; nothing of this epoch was "
                "checkpointed and the previous epoch's checkpoints are kept. Expected finite losses. Received: "
                + ", ".join(f"{k}={float(v)}" for k, v in bad.items())
                + ". Try lower learning rates, --loss hinge or --spectral-norm."
            )

    def on_epoch_end(self, epoch, logs=None):
        if int(self.model.g_optimizer.iterations.numpy()) < self.min_steps:
            return
        samples = self.model.generator.predict(self.model.sample_inputs(self.noise, self.labels), verbose=0)
        spread = mean_pairwise_distance(samples)
        if spread < self.collapse_ratio * self.real_spread:
            raise ModelError(
                f"The generator collapsed at epoch {epoch + 1}: its samples are nearly identical; this epoch was "
                f"not checkpointed. Expected a mean pairwise sample distance ≥ {self.collapse_ratio} × the real "
                f"images' ({self.real_spread:.2f}). Received: {spread:.3f}. "
                "Try --d-steps 1, lower learning rates, --loss hinge or --spectral-norm."
            )


def checkpointed_networks(gan):
    """The networks of ``gan`` that a GAN run checkpoints, by file stem."""
    return {"generator_ema": gan.ema_generator, "generator": gan.generator, "discriminator": gan.discriminator}


class GeneratorCheckpoint(keras.callbacks.Callback):
    """Saves ``generator_ema.keras``, ``generator.keras`` and ``discriminator.keras`` every epoch (atomic)."""

    def __init__(self, checkpoint_dir):
        super().__init__()
        self.checkpoint_dir = Path(checkpoint_dir)

    def on_epoch_end(self, epoch, logs=None):
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        for name, network in checkpointed_networks(self.model).items():
            tmp = self.checkpoint_dir / f".{name}.tmp.keras"
            network.save(tmp)
            tmp.replace(self.checkpoint_dir / f"{name}.keras")


@dataclasses.dataclass
class GANResult:
    """What ``fit_gan`` hands back: the trained ``GAN`` and where its run lives."""

    gan: GAN
    history: dict
    run_dir: Path
    strategy: object


def fit_gan(
    generator_fn,
    discriminator_fn,
    train,
    *,
    run_dir,
    epochs=20,
    batch_size=128,
    loss="bce",
    d_learning_rate=2e-4,
    g_learning_rate=2e-4,
    beta_1=0.5,
    beta_2=0.999,
    d_steps=1,
    ema_decay=0.999,
    fake_labels="batch",
    balance_classes=False,
    flip=False,
    seed=0,
    collapse_min_steps=1000,
    mixed_precision=False,
    xla=False,
    strategy=None,
    callbacks=(),
    verbose=None,
    hparams=None,
    profile_batches=None,
):
    """Train a ``GAN`` of the networks ``generator_fn()`` and ``discriminator_fn()`` build on ``train``.

    ``train`` is ``(uint8 images, int labels)``; labels are used when the
    generator is conditional. ``batch_size`` is per replica. Adam with
    ``beta_1=0.5`` as in DCGAN (SN-GAN and the projection discriminator
    use 0 and ``beta_2=0.9``); the two learning rates may differ (two
    time-scale updates, Heusel et al. 2017). ``fake_labels`` as for ``GAN``;
    ``balance_classes`` gives every real batch each class equally often
    (``make_pipeline``). A killed run resumes from its last finished
    epoch when called again with the same ``run_dir``; a finished run is
    loaded from its checkpoints, not trained again. Training stops with
    ``ModelError`` on NaN/inf losses, or on mode collapse after
    ``collapse_min_steps`` generator steps (see ``TrainingHealth``).
    ``mixed_precision`` builds both networks under a mixed policy
    (``engine.dtype_policy``; float16 with dynamic loss scaling); ``xla`` compiles the train step with XLA.
    TensorBoard gets the train step's graph, ``hparams`` (the run's
    settings) as an HParams session and the profiler on ``profile_batches``
    (``kvision.train.tensorboard.tensorboard_callbacks``).
    """
    parse_profile_batches(profile_batches)  # a bad range fails before any work
    run_dir = Path(run_dir)
    strategy = strategy or get_strategy()
    global_batch = global_batch_size(strategy, batch_size, len(train[0]))
    if seed is not None:
        keras.utils.set_random_seed(seed)
    with strategy.scope():
        gan = GAN(
            build_with_policy(generator_fn, mixed_precision), build_with_policy(discriminator_fn, mixed_precision),
            ema_decay=ema_decay, d_steps=d_steps, seed=seed or 0, fake_labels=fake_labels,
        )
        gan.compile(
            d_optimizer=keras.optimizers.Adam(d_learning_rate, beta_1=beta_1, beta_2=beta_2),
            g_optimizer=keras.optimizers.Adam(g_learning_rate, beta_1=beta_1, beta_2=beta_2),
            loss=loss,
            jit_compile=xla,
        )
    checkpoints = gan_paths(run_dir)["checkpoints"]
    if finished_checkpoint(run_dir, epochs, checkpoint=checkpoints / "generator_ema.keras") is not None:
        for name, network in checkpointed_networks(gan).items():
            network.load_weights(checkpoints / f"{name}.keras")
        return GANResult(gan, {}, run_dir, strategy)
    dataset = make_pipeline(*train, batch_size=global_batch, training=True, seed=seed, crop_padding=0, flip=flip,
                            balance_classes=balance_classes)
    backup = gan_paths(run_dir)["backup"]
    run_dir.mkdir(parents=True, exist_ok=True)
    noise, labels = fixed_inputs(gan)
    real = train[0][np.random.default_rng(0).choice(len(train[0]), size=min(GRID * GRID, len(train[0])), replace=False)]
    with worker_dir(run_dir) as out_dir:
        out = gan_paths(out_dir)
        start_history(backup, out["history"], out["finished"])
        run_callbacks = [  # the backup after the checkpoints and before the epoch's row, as in make_callbacks
            TrainingHealth(noise, labels, real, min_steps=collapse_min_steps),
            *tensorboard_callbacks(out["logs"], input_spec=dataset.element_spec, hparams=hparams,
                                   profile_batches=profile_batches),
            SampleGrid(noise, labels, out["logs"], out["samples"]),
            GeneratorCheckpoint(out["checkpoints"]),
            SharedBackupAndRestore(backup, out["backup"], finished=out["finished"]),
            keras.callbacks.CSVLogger(str(out["history"]), append=True),
        ]
        dataset, steps_per_epoch = repeat_epochs(dataset, strategy)
        history = gan.fit(
            dataset,
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            callbacks=[*run_callbacks, *callbacks],
            verbose=(1 if sys.stdout.isatty() else 2) if verbose is None else verbose,
        )
    return GANResult(gan, history.history, run_dir, strategy)
