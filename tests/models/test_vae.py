"""The VAE: shapes, the loss terms against closed forms, training lowers the negative ELBO, saving."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kvision.errors import ModelError
from kvision.models import VAE, build
from kvision.models.vae import kl_divergence, reconstruction_loss, reparameterize
from tests.helpers import quadrant_images

SHAPE = (16, 16, 1)


def small_vae(latent_dim=2, beta=1.0, seed=0):
    keras.utils.set_random_seed(seed)
    options = dict(latent_dim=latent_dim, dense_units=32)
    return VAE(build("vae_encoder", SHAPE, filters=(8, 16), **options),
               build("vae_decoder", SHAPE, filters=(16, 8), **options), beta=beta, seed=seed)


def test_shapes_and_ranges():
    vae = small_vae(latent_dim=3)
    images = quadrant_images(5)[0]
    z_mean, z_log_var = vae.encoder(images)
    assert z_mean.shape == z_log_var.shape == (5, 3)
    drawn = vae.decoder([np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)]).numpy()
    assert drawn.shape == (5, *SHAPE) and drawn.min() >= -1 and drawn.max() <= 1
    assert vae(images).shape == (5, *SHAPE)
    assert vae.decoder.inputs[0].name == "noise", "the decoder exports as a GAN generator does"


def test_kl_of_a_standard_normal_posterior_is_zero():
    zeros = tf.zeros((4, 6))
    np.testing.assert_allclose(kl_divergence(zeros, zeros).numpy(), np.zeros(4), atol=1e-7)


def test_kl_matches_the_closed_form_of_each_dimension():
    mean, sigma = np.array([[0.5, -1.0]], np.float32), np.array([[2.0, 0.3]], np.float32)
    expected = np.sum(np.log(1 / sigma) + (sigma**2 + mean**2) / 2 - 0.5, axis=-1)  # KL(N(μ,σ²) ‖ N(0,1))
    np.testing.assert_allclose(kl_divergence(mean, np.log(sigma**2)).numpy(), expected, rtol=1e-5)


def test_reparameterisation_draws_from_the_posterior():
    epsilon = tf.random.stateless_normal((200_000, 1), seed=(1, 2))
    z = reparameterize(tf.fill((200_000, 1), 3.0), tf.fill((200_000, 1), float(np.log(0.25))), epsilon).numpy()
    assert z.mean() == pytest.approx(3.0, abs=0.01) and z.std() == pytest.approx(0.5, abs=0.01)


def test_reconstruction_loss_is_bernoulli_cross_entropy_summed_over_pixels():
    images = np.array([[[[0], [255]], [[51], [204]]]], np.uint8)  # one 2×2 image
    logits = np.array([[[[0.3], [-1.2]], [[2.0], [0.0]]]], np.float32)
    p, x = 1 / (1 + np.exp(-logits)), images / 255.0
    expected = -np.sum(x * np.log(p) + (1 - x) * np.log(1 - p))
    np.testing.assert_allclose(reconstruction_loss(images, logits).numpy(), [expected], rtol=1e-5)


def test_training_raises_the_elbo():
    images = quadrant_images(256, seed=1)[0]
    vae = small_vae()
    vae.compile(optimizer=keras.optimizers.Adam(3e-3))
    before = vae.evaluate(images, batch_size=64, verbose=0, return_dict=True)
    history = vae.fit(images, epochs=8, batch_size=32, verbose=0).history
    after = vae.evaluate(images, batch_size=64, verbose=0, return_dict=True)
    assert after["elbo"] > before["elbo"] + 20, (before, after)
    np.testing.assert_allclose(after["elbo"], -(after["reconstruction"] + after["kl"]), rtol=1e-5)
    assert history["loss"][-1] < history["loss"][0]


def test_beta_weights_only_the_kl_term_of_the_loss():
    images = quadrant_images(64, seed=2)[0]
    reports = {}
    for beta in (0.0, 4.0):
        vae = small_vae(beta=beta)
        vae.compile(optimizer="adam")
        reports[beta] = vae.evaluate(images, batch_size=64, verbose=0, return_dict=True)
    assert reports[0.0]["elbo"] == pytest.approx(reports[4.0]["elbo"], rel=1e-6), "same weights, same noise"
    assert reports[0.0]["loss"] == pytest.approx(reports[0.0]["reconstruction"], rel=1e-6)
    assert reports[4.0]["loss"] == pytest.approx(reports[4.0]["reconstruction"] + 4 * reports[4.0]["kl"], rel=1e-5)


def test_saves_and_loads_as_a_keras_file(tmp_path):
    vae = small_vae(beta=2.5, seed=7)
    vae.compile(optimizer="adam")
    vae.save(tmp_path / "vae.keras")
    loaded = keras.saving.load_model(tmp_path / "vae.keras")
    images = quadrant_images(4)[0]
    assert isinstance(loaded, VAE) and loaded.beta == 2.5 and loaded.seed == 7
    np.testing.assert_allclose(loaded(images).numpy(), vae(images).numpy(), atol=1e-6)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: build("vae_encoder", (28, 30, 1), filters=(8, 16)), "multiples of 2\\^len\\(filters\\) = 4"),
        (lambda: build("vae_decoder", SHAPE, latent_dim=0), "latent_dim must be a positive integer"),
        (lambda: VAE(build("vae_encoder", SHAPE, latent_dim=2), build("vae_decoder", SHAPE, latent_dim=3)),
         "\\[z_mean, z_log_var\\] of the decoder's latent size"),
        (lambda: VAE(build("vae_encoder", SHAPE), build("vae_decoder", (32, 32, 1))), "images of the encoder's input shape"),
        (lambda: VAE(build("vae_encoder", SHAPE), build("vae_decoder", SHAPE), beta=-1), "beta must be a number"),
    ],
)
def test_bad_settings_are_clear_errors(make, message):
    with pytest.raises(ModelError, match=message):
        make()
