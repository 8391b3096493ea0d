"""fit_vae: the run directory, the pictures, resume; the traversal grid."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kvision.errors import ModelError
from kvision.models import VAE, build
from kvision.train.callbacks import run_paths
from kvision.train.vae import fit_vae, latent_traversal, reconstruction_grid
from tests.helpers import quadrant_images

SHAPE = (16, 16, 1)
NETWORKS = dict(latent_dim=2, dense_units=32)


def encoder_fn():
    return build("vae_encoder", SHAPE, filters=(8, 16), **NETWORKS)


def decoder_fn():
    return build("vae_decoder", SHAPE, filters=(16, 8), **NETWORKS)


def test_fit_vae_trains_writes_pictures_and_loads_a_finished_run(tmp_path):
    train, validation = quadrant_images(256, seed=1)[0], quadrant_images(64, seed=2)[0]
    options = dict(run_dir=tmp_path, epochs=3, batch_size=32, learning_rate=3e-3, verbose=0)
    result = fit_vae(encoder_fn, decoder_fn, train, validation, **options)
    history = result.history
    assert history["val_elbo"][-1] > history["val_elbo"][0]
    best = keras.saving.load_model(run_paths(tmp_path)["best"])
    assert isinstance(best, VAE), "checkpoints hold the whole VAE"
    for returned, saved in zip(result.model.get_weights(), best.get_weights()):
        np.testing.assert_array_equal(returned, saved)  # the best epoch's weights come back
    report = result.model.evaluate(validation, batch_size=64, verbose=0, return_dict=True)
    for picture in ("reconstructions", "traversal"):
        assert (tmp_path / "samples" / f"{picture}_epoch_003.png").exists()
    assert run_paths(tmp_path)["best"].exists() and (tmp_path / "logs" / "samples").is_dir()

    again = fit_vae(encoder_fn, decoder_fn, train, validation, **options)
    assert again.history == {}, "a finished run is loaded, not trained"
    again_report = again.model.evaluate(validation, batch_size=64, verbose=0, return_dict=True)
    assert again_report["loss"] == pytest.approx(report["loss"], rel=1e-5)


def test_latent_traversal_sweeps_the_chosen_dimensions():
    decoder = build("vae_decoder", SHAPE, latent_dim=3, filters=(16, 8), dense_units=32)
    grid = latent_traversal(decoder, dims=(2, 0), steps=5, span=2.0)
    assert grid.shape == (5 * 16, 5 * 16, 1) and grid.dtype == np.uint8
    corner = np.zeros((1, 3), np.float32)
    corner[0, 2], corner[0, 0] = -2.0, 2.0  # top-left: dims[0] at -span, dims[1] at +span
    expected = np.round((decoder([corner]).numpy()[0] + 1) * 127.5)
    np.testing.assert_allclose(grid[:16, :16].astype(float), expected, atol=1)
    with pytest.raises(ModelError, match="two different latent indices in \\[0, 3\\)"):
        latent_traversal(decoder, dims=(0, 3))


def test_reconstruction_grid_pairs_rows_of_originals_and_reconstructions():
    from tests.models.test_vae import small_vae

    images = quadrant_images(23)[0]
    grid = reconstruction_grid(small_vae(), images, columns=10)
    assert grid.shape == (4 * 16, 10 * 16, 1), "two full rows of originals, each with its reconstructions"
    np.testing.assert_array_equal(grid[:16, :16], images[0])
    np.testing.assert_array_equal(grid[32:48, :16], images[10])
    assert tf.reduce_any(grid[16:32] != grid[:16])
