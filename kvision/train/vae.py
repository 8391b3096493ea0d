"""Training a ``VAE`` with ``fit``: the engine's run directory, plus its pictures every epoch.

The run gets the engine's TensorBoard scalars (loss, reconstruction, KL,
ELBO, for training and validation), CSV history, best/last ``.keras``
checkpoints of the whole VAE (lowest validation loss) and resume after a
kill; and, every epoch, test-image reconstructions and a 2-D latent
traversal grid, in TensorBoard and as PNG under ``samples/``.
"""

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from kvision.data import make_pipeline
from kvision.data.dataset import check_split
from kvision.models.common import require
from kvision.models.gan import to_uint8
from kvision.models.vae import VAE
from kvision.train.engine import build_with_policy, compile_run, finished_checkpoint, fit_run, run_result
from kvision.train.gan import image_grid
from kvision.train.strategy import get_strategy, global_batch_size, is_chief

TRAVERSAL_STEPS = 15


def vae_pipeline(images, *, batch_size, training, seed=None):
    """Batches of uint8 ``images`` as float32 0..255 (shuffled, full batches only when ``training``)."""
    return make_pipeline(images, np.zeros(len(images), np.int64), batch_size=batch_size, training=training,
                         seed=seed, crop_padding=0, flip=False)  # the zero labels are not used


def reconstruction_grid(vae, images, *, columns=10):
    """uint8 grid: rows of ``columns`` originals, each followed by the row of their reconstructions."""
    images = np.asarray(images)[: len(images) // columns * columns]
    reconstructions = to_uint8(vae(tf.cast(images, tf.float32), training=False)).numpy()
    rows = [part for start in range(0, len(images), columns)
            for part in (images[start:start + columns], reconstructions[start:start + columns])]
    return image_grid(np.concatenate(rows), columns=columns)


def latent_traversal(decoder, *, dims=(0, 1), steps=TRAVERSAL_STEPS, span=3.0):
    """uint8 ``steps × steps`` grid of decoded latents: ``dims`` swept over ``[-span, span]``, the rest 0.

    With a 2-D latent space this is the whole learned manifold (Kingma &
    Welling's figure); with more dimensions, the plane of two of them.
    Columns sweep ``dims[0]`` left to right, rows ``dims[1]`` top to bottom.
    """
    latent_dim = int(decoder.inputs[0].shape[-1])
    require(len(dims) == 2 and dims[0] != dims[1] and all(0 <= dim < latent_dim for dim in dims),
            f"dims must be two different latent indices in [0, {latent_dim}).", dims=dims)
    values = np.linspace(-span, span, steps, dtype=np.float32)
    latents = np.zeros((steps, steps, latent_dim), np.float32)
    latents[:, :, dims[0]] = values[None, :]
    latents[:, :, dims[1]] = values[::-1, None]
    images = decoder([latents.reshape(-1, latent_dim)], training=False)
    return image_grid(to_uint8(images).numpy(), columns=steps)


def write_png(path, grid):
    """Write a uint8 ``[H, W, C]`` grid as PNG, creating the folder."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tf.io.write_file(str(path), tf.io.encode_png(grid))


class VAEPictures(keras.callbacks.Callback):
    """Every epoch: reconstructions of fixed ``images`` and the latent traversal, to TensorBoard and PNG.

    The networks are called directly (no ``predict``, which is a collective
    operation under a multi-worker strategy); only the chief writes.
    """

    def __init__(self, images, run_dir):
        super().__init__()
        self.images = images
        self.samples_dir = Path(run_dir) / "samples"
        self.writer = tf.summary.create_file_writer(str(Path(run_dir) / "logs" / "samples")) if is_chief() else None

    def on_epoch_end(self, epoch, logs=None):
        if self.writer is None:
            return
        grids = {"reconstructions": reconstruction_grid(self.model, self.images),
                 "traversal": latent_traversal(self.model.decoder)}
        with self.writer.as_default():
            for name, grid in grids.items():
                write_png(self.samples_dir / f"{name}_epoch_{epoch + 1:03d}.png", grid)
                tf.summary.image(name, grid[None], step=epoch)
        self.writer.flush()


def fit_vae(
    encoder_fn,
    decoder_fn,
    train,
    validation,
    *,
    run_dir,
    epochs=30,
    batch_size=128,
    learning_rate=1e-3,
    schedule="cosine",
    beta=1.0,
    seed=0,
    mixed_precision=False,
    xla=False,
    strategy=None,
    callbacks=(),
    verbose=None,
    hparams=None,
    profile_batches=None,
):
    """Train a ``VAE`` of the networks ``encoder_fn()`` and ``decoder_fn()`` build on uint8 ``train`` images.

    Adam at ``learning_rate`` with the ``schedule`` of
    ``kvision.train.make_schedule``; ``batch_size`` per replica. The returned
    VAE holds the weights of the epoch with the lowest validation loss. A
    killed run resumes from its last finished epoch; a finished run is loaded,
    not trained again.

    Args:
        encoder_fn, decoder_fn: zero-argument callables returning the
            networks (``build("vae_encoder", ...)``), called in the strategy scope.
        train, validation: uint8 images ``(N, H, W, C)``; the first 20
            validation images are the ones reconstructed every epoch.
        beta: weight of the KL term (see ``VAE``).
        seed: an int; seeds weights, shuffling and the reparameterisation noise.
        mixed_precision: build under a mixed policy (``engine.dtype_policy``).
        xla: compile the train step with XLA.
        hparams, profile_batches: the run's settings for TensorBoard's HParams
            dashboard, batches to profile (see ``kvision.train.make_callbacks``).

    Returns:
        A ``TrainResult`` whose ``model`` is the trained ``VAE``.
    """
    for name, images in (("train", train), ("validation", validation)):
        check_split(images, np.zeros(len(images)), f"fit_vae ({name} images)")
    strategy = strategy or get_strategy()
    global_batch = global_batch_size(strategy, batch_size, len(train))
    keras.utils.set_random_seed(seed)
    with strategy.scope():
        vae = build_with_policy(lambda: VAE(encoder_fn(), decoder_fn(), beta=beta, seed=seed), mixed_precision)
        compile_run(vae, steps_per_epoch=len(train) // global_batch, epochs=epochs, optimizer="adam",
                    learning_rate=learning_rate, schedule=schedule, xla=xla)
        vae.optimizer.build(vae.trainable_variables)  # slots in the strategy scope, not in the first step
    checkpoint = finished_checkpoint(run_dir, epochs)
    if checkpoint is not None:
        vae.load_weights(checkpoint)
        return run_result(vae, {}, run_dir, strategy)
    return fit_run(
        vae, vae_pipeline(train, batch_size=global_batch, training=True, seed=seed),
        vae_pipeline(validation, batch_size=global_batch, training=False),
        run_dir=Path(run_dir), epochs=epochs, monitor="val_loss", mode="min", strategy=strategy,
        callbacks=[VAEPictures(validation[:20], run_dir), *callbacks], verbose=verbose, hparams=hparams,
        profile_batches=profile_batches,
    )
