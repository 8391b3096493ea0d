"""Convolutional variational autoencoder: builders and the ``VAE`` model that trains them.

Kingma & Welling 2013 (https://arxiv.org/abs/1312.6114), with the β of
Higgins et al. 2017 (β-VAE). The encoder maps raw 0..255 images to the mean
and log-variance of a diagonal Gaussian posterior q(z|x); a latent is drawn
with the reparameterisation z = μ + σ·ε so gradients flow through the draw;
the decoder maps z to per-pixel Bernoulli logits over intensities in [0, 1]
(the usual likelihood for MNIST-like images, used with grey levels as
targets). The loss is the negative ELBO, reconstruction + β·KL(q(z|x) ‖ N(0, I)),
in nats per image.

The decoder's output is the image in ``[-1, 1]`` (the Bernoulli mean,
rescaled), with its latent input named ``noise``: the convention of the GAN
generator, so the decoder samples, exports and serves exactly like one
(``kvision.export.export_generator``).
"""

import keras
import tensorflow as tf
from keras import layers

from kvision.models.common import is_positive_int, require
from kvision.models.registry import register_model

LOGITS = "logits"  # the decoder layer whose output the likelihood is computed from


def _check_shape(input_shape, filters):
    require(
        isinstance(input_shape, (tuple, list)) and len(input_shape) == 3 and all(map(is_positive_int, input_shape)),
        "A VAE takes an image shape (height, width, channels) of positive integers.",
        input_shape=input_shape,
    )
    require(
        isinstance(filters, (tuple, list)) and filters and all(map(is_positive_int, filters)),
        "filters must be a non-empty sequence of positive integers, one per stride-2 convolution.",
        filters=filters,
    )
    scale = 2 ** len(filters)
    require(
        input_shape[0] % scale == 0 and input_shape[1] % scale == 0,
        f"The image height and width must be multiples of 2^len(filters) = {scale} (one stride-2 step per filter).",
        input_shape=input_shape, filters=filters,
    )


@register_model("vae_encoder", task="vae")
def build_vae_encoder(input_shape, *, latent_dim=2, filters=(32, 64), dense_units=128, name="vae_encoder"):
    """Build the encoder: raw 0..255 ``image`` → ``[z_mean, z_log_var]``, each float32 ``[N, latent_dim]``.

    Args:
        input_shape: ``(height, width, channels)``, multiples of ``2 ** len(filters)``.
        latent_dim: size of the latent space (2: the whole space fits one traversal grid).
        filters: channels of the stride-2 3×3 convolutions, one per halving.
        dense_units: width of the dense layer before the two heads.
    """
    _check_shape(input_shape, filters)
    require(is_positive_int(latent_dim), "latent_dim must be a positive integer.", latent_dim=latent_dim)
    image = keras.Input(tuple(input_shape), name="image")
    x = layers.Rescaling(1 / 255, name="to_unit")(image)
    for index, width in enumerate(filters):
        x = layers.Conv2D(width, 3, strides=2, padding="same", activation="relu", name=f"down{index + 1}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(dense_units, activation="relu", name="hidden")(x)
    z_mean = layers.Dense(latent_dim, dtype="float32", name="z_mean")(x)
    z_log_var = layers.Dense(latent_dim, dtype="float32", name="z_log_var")(x)
    return keras.Model(image, [z_mean, z_log_var], name=name)


@register_model("vae_decoder", task="vae")
def build_vae_decoder(input_shape, *, latent_dim=2, filters=(64, 32), dense_units=128, name="vae_decoder"):
    """Build the decoder: ``noise`` (a latent, float32 ``[N, latent_dim]``) → image in ``[-1, 1]``.

    The layer named ``"logits"`` holds the per-pixel Bernoulli logits the
    ELBO is computed from; the output is their mean ``sigmoid`` rescaled to
    ``[-1, 1]``, as a GAN generator draws.

    Args:
        input_shape: the image ``(height, width, channels)`` to draw.
        latent_dim: size of the latent input.
        filters: channels of the stride-2 transposed convolutions, one per doubling.
        dense_units: width of the dense layer after the latent.
    """
    _check_shape(input_shape, filters)
    require(is_positive_int(latent_dim), "latent_dim must be a positive integer.", latent_dim=latent_dim)
    height, width, channels = input_shape
    scale = 2 ** len(filters)
    noise = keras.Input((latent_dim,), name="noise")
    x = layers.Dense(dense_units, activation="relu", name="hidden")(noise)
    x = layers.Dense(height // scale * width // scale * filters[0], activation="relu", name="project")(x)
    x = layers.Reshape((height // scale, width // scale, filters[0]), name="to_map")(x)
    for index, units in enumerate(filters):
        x = layers.Conv2DTranspose(units, 3, strides=2, padding="same", activation="relu", name=f"up{index + 1}")(x)
    logits = layers.Conv2DTranspose(channels, 3, padding="same", dtype="float32", name=LOGITS)(x)
    mean = layers.Activation("sigmoid", dtype="float32", name="mean")(logits)
    image = layers.Rescaling(2.0, offset=-1.0, dtype="float32", name="image")(mean)
    return keras.Model([noise], image, name=name)  # a list, as the GAN generator's inputs


def kl_divergence(z_mean, z_log_var):
    """KL(N(μ, diag σ²) ‖ N(0, I)) per example, in nats: ``-½ Σ (1 + log σ² − μ² − σ²)``."""
    return -0.5 * tf.reduce_sum(1.0 + z_log_var - tf.square(z_mean) - tf.exp(z_log_var), axis=-1)


def reparameterize(z_mean, z_log_var, epsilon):
    """``z = μ + σ·ε``: a draw from q(z|x) that is differentiable in μ and log σ²."""
    return z_mean + tf.exp(0.5 * z_log_var) * epsilon


def reconstruction_loss(images, logits):
    """−log p(x|z) per example in nats: Bernoulli cross-entropy of 0..255 ``images`` (as [0, 1]) summed over pixels."""
    targets = tf.cast(images, tf.float32) / 255.0
    per_pixel = tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=tf.cast(logits, tf.float32))
    return tf.reduce_sum(tf.reshape(per_pixel, [tf.shape(per_pixel)[0], -1]), axis=-1)


@keras.saving.register_keras_serializable(package="kvision")
class VAE(keras.Model):
    """An encoder and a decoder trained by ``fit`` on batches of raw 0..255 images.

    ``train_step`` minimises ``reconstruction + β·KL`` averaged over the
    global batch and logs ``loss``, ``reconstruction``, ``kl`` and ``elbo``
    (the β = 1 evidence lower bound, nats per image, whatever β trains).
    ``test_step`` reports the same on one posterior draw per image. The
    reparameterisation noise is drawn from a stateless seed of (seed, step,
    replica), so runs repeat and every replica draws its own. Saves and loads
    as a ``.keras`` file (both networks and β).

    Args:
        encoder: from ``build_vae_encoder`` (image → ``[z_mean, z_log_var]``).
        decoder: from ``build_vae_decoder`` (``noise`` → image, with a ``"logits"`` layer).
        beta: weight of the KL term (1: the ELBO; > 1: β-VAE, more disentangled, blurrier).
        seed: seed of the reparameterisation noise.
    """

    def __init__(self, encoder, decoder, *, beta=1.0, seed=0, **kwargs):
        super().__init__(**kwargs)
        require(isinstance(beta, (int, float)) and beta >= 0, "beta must be a number ≥ 0.", beta=beta)
        require(
            len(encoder.outputs) == 2 and encoder.outputs[0].shape[-1] == decoder.inputs[0].shape[-1],
            "The encoder must return [z_mean, z_log_var] of the decoder's latent size.",
            encoder_outputs=[tuple(t.shape) for t in encoder.outputs], decoder_input=tuple(decoder.inputs[0].shape),
        )
        require(
            LOGITS in [layer.name for layer in decoder.layers],
            f"The decoder must have a layer named {LOGITS!r} holding the Bernoulli logits.", decoder=decoder.name,
        )
        require(
            tuple(encoder.inputs[0].shape[1:]) == tuple(decoder.outputs[0].shape[1:]),
            "The decoder must draw images of the encoder's input shape.",
            encoder_input=tuple(encoder.inputs[0].shape[1:]), decoder_output=tuple(decoder.outputs[0].shape[1:]),
        )
        self.encoder = encoder
        self.decoder = decoder
        self.decoder_logits = keras.Model(decoder.inputs, decoder.get_layer(LOGITS).output, name="decoder_logits")
        self.latent_dim = int(decoder.inputs[0].shape[-1])
        self.beta = float(beta)
        self.seed = int(seed)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in ("loss", "reconstruction", "kl", "elbo")}
        self.built = True  # both networks are built functional models

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, inputs, training=False):
        """Reconstructions in ``[-1, 1]`` of raw 0..255 images: the decoder at the posterior mean."""
        z_mean, _ = self.encoder(inputs, training=training)
        return self.decoder([z_mean], training=training)

    def _epsilon(self, batch_size):
        """Standard normal noise for this replica, step and seed."""
        context = tf.distribute.get_replica_context()
        replica = context.replica_id_in_sync_group if context else 0
        step = tf.cast(self.optimizer.iterations if self.optimizer else 0, tf.int32)
        seed = tf.stack([tf.constant(self.seed, tf.int32) * 1000 + replica, step])
        return tf.random.stateless_normal((batch_size, self.latent_dim), seed=seed)

    def losses_of(self, images, training=False):
        """Per-example ``(reconstruction, kl)`` in nats of raw 0..255 ``images``, one posterior draw each."""
        z_mean, z_log_var = self.encoder(images, training=training)
        z = reparameterize(z_mean, z_log_var, self._epsilon(tf.shape(images)[0]))
        return reconstruction_loss(images, self.decoder_logits([z], training=training)), kl_divergence(z_mean, z_log_var)

    def _record(self, reconstruction, kl):
        self.trackers["loss"].update_state(reconstruction + self.beta * kl)
        self.trackers["reconstruction"].update_state(reconstruction)
        self.trackers["kl"].update_state(kl)
        self.trackers["elbo"].update_state(-(reconstruction + kl))
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def train_step(self, data):
        images = keras.utils.unpack_x_y_sample_weight(data)[0]
        with tf.GradientTape() as tape:
            reconstruction, kl = self.losses_of(images, training=True)
            loss = tf.nn.compute_average_loss(reconstruction + self.beta * kl)  # over the global batch
            if self.losses:  # L2 weight decay (kvision.train.apply_weight_decay)
                loss += tf.nn.scale_regularization_loss(tf.add_n(self.losses))
            scaled = self.optimizer.scale_loss(loss)
        weights = self.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(scaled, weights), weights))
        return self._record(reconstruction, kl)

    def test_step(self, data):
        return self._record(*self.losses_of(keras.utils.unpack_x_y_sample_weight(data)[0]))

    def get_config(self):
        return {
            **super().get_config(),
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "decoder": keras.saving.serialize_keras_object(self.decoder),
            "beta": self.beta,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        networks = {key: keras.saving.deserialize_keras_object(config.pop(key)) for key in ("encoder", "decoder")}
        return cls(**networks, **config)
