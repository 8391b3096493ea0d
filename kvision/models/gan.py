"""DCGAN and class-conditional DCGAN builders, and the ``GAN`` model that trains them.

Radford, Metz & Chintala 2015 (https://arxiv.org/abs/1511.06434): the
generator upsamples a latent vector with strided transposed convolutions,
BatchNorm and ReLU to a ``tanh`` image; the discriminator downsamples with
strided convolutions and LeakyReLU, without pooling. The conditional variant
(Mirza & Osindero 2014, https://arxiv.org/abs/1411.1784) concatenates a label
embedding to the latent vector and, as an extra image channel, to the
discriminator's input.

Images live in ``[-1, 1]`` inside the networks; ``GAN.train_step`` rescales
the raw 0..255 pixels it is fed, and the exported generator returns uint8.
"""

import math

import keras
import tensorflow as tf
from keras import layers

from kvision.errors import ModelError
from kvision.models.common import is_positive_int, require
from kvision.models.registry import register_model

LOSSES = ("bce", "hinge")


def _upsamplings(input_shape):
    """``(start size, number of 2× steps)`` for a square image of side 7·2^k or 8·2^k, k ≥ 1."""
    require(
        isinstance(input_shape, (tuple, list)) and len(input_shape) == 3 and all(map(is_positive_int, input_shape)),
        "A DCGAN takes an image shape (height, width, channels) of positive integers.",
        input_shape=input_shape,
    )
    height, width, _ = input_shape
    for start in (7, 8):
        steps = math.log2(height / start)
        if height == width and steps >= 1 and steps == int(steps):
            return start, int(steps)
    raise ModelError(
        "A DCGAN draws square images of side 7·2^k or 8·2^k with k ≥ 1 (14, 16, 28, 32, 56, 64, …). "
        f"Received: input_shape={tuple(input_shape)}"
    )


def _label_input(num_classes, embedding_dim, name):
    """The int32 ``label`` input and its embedding, or ``(None, None)`` when unconditional."""
    if not num_classes:
        return None, None
    require(is_positive_int(num_classes), "num_classes must be a positive integer or None.", num_classes=num_classes)
    label = keras.Input((), dtype="int32", name="label")
    return label, layers.Embedding(num_classes, embedding_dim, name=f"{name}_label_embedding")(label)


@register_model("dcgan_generator", task="gan")
def build_dcgan_generator(input_shape, num_classes=None, *, latent_dim=128, filters=256, embedding_dim=50,
                          name="dcgan_generator"):
    """Build a DCGAN generator drawing ``input_shape`` images in ``[-1, 1]``.

    Args:
        input_shape: the image ``(side, side, channels)``; side 7·2^k or 8·2^k.
        num_classes: classes to condition on (adds the int32 ``label`` input); None: unconditional.
        latent_dim: size of the float32 ``noise`` input.
        filters: channels at the smallest resolution, halved at each upsampling (at least 32).
        embedding_dim: size of the label embedding.
    """
    start, steps = _upsamplings(input_shape)
    require(is_positive_int(latent_dim), "latent_dim must be a positive integer.", latent_dim=latent_dim)
    noise = keras.Input((latent_dim,), name="noise")
    label, embedded = _label_input(num_classes, embedding_dim, name)
    x = noise if label is None else layers.Concatenate(name="noise_and_label")([noise, embedded])
    x = layers.Dense(start * start * filters, use_bias=False, name="project")(x)
    x = layers.BatchNormalization(synchronized=True, name="project_bn")(x)
    x = layers.ReLU(name="project_relu")(x)
    x = layers.Reshape((start, start, filters), name="to_map")(x)
    for step in range(steps):
        width = max(filters // 2 ** (step + 1), 32)
        x = layers.Conv2DTranspose(width, 4, strides=2, padding="same", use_bias=False, name=f"up{step + 1}")(x)
        x = layers.BatchNormalization(synchronized=True, name=f"up{step + 1}_bn")(x)
        x = layers.ReLU(name=f"up{step + 1}_relu")(x)
    image = layers.Conv2DTranspose(input_shape[-1], 3, padding="same", activation="tanh", dtype="float32", name="image")(x)
    return keras.Model([noise] if label is None else [noise, label], image, name=name)


@register_model("dcgan_discriminator", task="gan")
def build_dcgan_discriminator(input_shape, num_classes=None, *, filters=64, dropout=0.3, spectral_norm=False,
                              embedding_dim=50, name="dcgan_discriminator"):
    """Build a DCGAN discriminator: ``image`` in ``[-1, 1]`` (and ``label``) → one real/fake logit.

    Args:
        input_shape: the image ``(side, side, channels)``; side 7·2^k or 8·2^k.
        num_classes: classes to condition on (adds the int32 ``label`` input); None: unconditional.
        filters: channels of the first strided convolution, doubled at each.
        dropout: dropout after each LeakyReLU (0: none).
        spectral_norm: wrap every convolution and the output in spectral normalisation.
    """
    _, steps = _upsamplings(input_shape)
    require(0 <= dropout < 1, "dropout must be in [0, 1).", dropout=dropout)
    normalise = layers.SpectralNormalization if spectral_norm else (lambda layer: layer)
    image = keras.Input(tuple(input_shape), name="image")
    label, embedded = _label_input(num_classes, embedding_dim, name)
    x = image
    if label is not None:
        height, width, _ = input_shape
        plane = layers.Reshape((height, width, 1), name="label_plane")(layers.Dense(height * width, name="label_map")(embedded))
        x = layers.Concatenate(name="image_and_label")([image, plane])
    for step in range(steps):
        x = normalise(layers.Conv2D(filters * 2**step, 4, strides=2, padding="same", name=f"down{step + 1}"))(x)
        x = layers.LeakyReLU(0.2, name=f"down{step + 1}_lrelu")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"down{step + 1}_dropout")(x)
    x = layers.Flatten(name="flatten")(x)
    logit = normalise(layers.Dense(1, dtype="float32", name="logit"))(x)
    return keras.Model([image] if label is None else [image, label], logit, name=name)


def to_uint8(images):
    """Generator images in ``[-1, 1]`` as uint8 0..255, rounded: what grids, metrics and the export show."""
    return tf.cast(tf.clip_by_value(tf.round((tf.cast(images, tf.float32) + 1.0) * 127.5), 0.0, 255.0), tf.uint8)


def generator_classes(generator):
    """The number of classes a conditional generator takes (its label embedding's size); None if unconditional."""
    if len(generator.inputs) == 1:
        return None
    return next(layer.input_dim for layer in generator.layers if isinstance(layer, layers.Embedding))


def _losses(kind, real_logits, fake_logits):
    """Per-example ``(d_loss, g_loss)``: non-saturating BCE (Goodfellow et al.) or hinge (Lim & Ye)."""
    if kind == "bce":
        return tf.nn.softplus(-real_logits) + tf.nn.softplus(fake_logits), tf.nn.softplus(-fake_logits)
    return tf.nn.relu(1.0 - real_logits) + tf.nn.relu(1.0 + fake_logits), -fake_logits


class GAN(keras.Model):
    """A generator and discriminator trained adversarially by ``fit``.

    ``train_step`` runs ``d_steps`` discriminator updates then one generator
    update per batch of raw 0..255 images (with int labels when conditional),
    and updates an exponential moving average of the generator's weights,
    ``ema_generator``, the one to sample from and export. Losses are averaged
    over the global batch and noise is drawn per replica from a stateless
    seed, so the same code runs under any ``tf.distribute`` strategy.

    Args:
        generator, discriminator: from ``build_dcgan_generator`` /
            ``build_dcgan_discriminator`` (or any models with the same inputs).
        ema_decay: decay of the generator's weight average per step.
        d_steps: discriminator updates per generator update.
        seed: seed of the noise stream.
    """

    def __init__(self, generator, discriminator, *, ema_decay=0.999, d_steps=1, seed=0, **kwargs):
        super().__init__(**kwargs)
        require(0 <= ema_decay < 1, "ema_decay must be in [0, 1).", ema_decay=ema_decay)
        require(is_positive_int(d_steps), "d_steps must be a positive integer.", d_steps=d_steps)
        self.generator = generator
        self.discriminator = discriminator
        self.ema_generator = keras.models.clone_model(generator)
        self.ema_generator.set_weights(generator.get_weights())
        self.num_classes = generator_classes(generator)
        self.conditional = self.num_classes is not None
        self.latent_dim = int(generator.inputs[0].shape[-1])
        self.ema_decay = ema_decay
        self.d_steps = d_steps
        self.seed = seed
        self.built = True  # the three networks are built functional models

    def compile(self, d_optimizer, g_optimizer, loss="bce", **kwargs):
        """Set the two optimizers and the loss (``"bce"``: non-saturating, or ``"hinge"``)."""
        require(loss in LOSSES, f"loss must be one of {', '.join(LOSSES)}.", loss=loss)
        super().compile(**kwargs)
        self.d_optimizer = keras.optimizers.get(d_optimizer)
        self.g_optimizer = keras.optimizers.get(g_optimizer)
        if self.generator.dtype_policy.name == "mixed_float16":
            # Dynamic loss scaling, as Model.compile adds it for models trained with fit's own step.
            self.d_optimizer = keras.optimizers.LossScaleOptimizer(self.d_optimizer)
            self.g_optimizer = keras.optimizers.LossScaleOptimizer(self.g_optimizer)
        # Slot variables are created here, in the strategy scope, not lazily inside the
        # distributed train step (where MirroredStrategy cannot initialise them).
        self.d_optimizer.build(self.discriminator.trainable_variables)
        self.g_optimizer.build(self.generator.trainable_variables)
        self.loss_kind = loss
        self.trackers = {
            name: keras.metrics.Mean(name=name) for name in ("d_loss", "g_loss", "d_real_accuracy", "d_fake_accuracy")
        }

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, inputs, training=False):
        """Images in ``[-1, 1]`` from the EMA generator: ``noise`` or ``[noise, label]``."""
        return self.ema_generator(inputs, training=training)

    def sample_inputs(self, noise, labels=None):
        """The generators' inputs for ``noise`` (and ``labels`` when conditional)."""
        return [noise, tf.cast(labels, tf.int32)] if self.conditional else [noise]

    def _noise(self, batch_size, stream):
        """This replica's slice of the global batch's noise for this step and ``stream``.

        The noise of the whole global batch depends only on (seed, step,
        stream), so 1 device and N devices see the same noise per example.
        """
        context = tf.distribute.get_replica_context()
        replicas = context.num_replicas_in_sync if context else 1
        replica = context.replica_id_in_sync_group if context else 0
        step = tf.cast(self.g_optimizer.iterations, tf.int32)
        seed = tf.stack([tf.constant(self.seed * 1000 + stream, tf.int32), step])
        noise = tf.random.stateless_normal((batch_size * replicas, self.latent_dim), seed=seed)
        return noise[replica * batch_size : (replica + 1) * batch_size]

    def _unpack(self, data):
        images, labels, _ = keras.utils.unpack_x_y_sample_weight(data)
        if self.conditional and labels is None:
            raise ValueError("A conditional GAN trains on (images, labels) batches; the batch has no labels.")
        real = tf.cast(images, tf.float32) / 127.5 - 1.0
        return real, (tf.cast(labels, tf.int32) if self.conditional else None)

    def _discriminate(self, images, labels, training):
        return self.discriminator([images, labels] if self.conditional else [images], training=training)

    def _scores(self, real, labels, noise, training):
        fake = self.generator(self.sample_inputs(noise, labels), training=training)
        return self._discriminate(real, labels, training), self._discriminate(fake, labels, training)

    def _record(self, d_loss, g_loss, real_logits, fake_logits):
        self.trackers["d_loss"].update_state(tf.reduce_mean(d_loss))
        self.trackers["g_loss"].update_state(tf.reduce_mean(g_loss))
        self.trackers["d_real_accuracy"].update_state(tf.reduce_mean(tf.cast(real_logits > 0, tf.float32)))
        self.trackers["d_fake_accuracy"].update_state(tf.reduce_mean(tf.cast(fake_logits < 0, tf.float32)))
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def train_step(self, data):
        real, labels = self._unpack(data)
        batch_size = tf.shape(real)[0]
        for step in range(self.d_steps):
            noise = self._noise(batch_size, stream=step)
            with tf.GradientTape() as tape:
                real_logits, fake_logits = self._scores(real, labels, noise, training=True)
                d_loss, _ = _losses(self.loss_kind, real_logits, fake_logits)
                scaled = self.d_optimizer.scale_loss(tf.nn.compute_average_loss(d_loss))
            weights = self.discriminator.trainable_weights
            self.d_optimizer.apply_gradients(zip(tape.gradient(scaled, weights), weights))
        noise = self._noise(batch_size, stream=self.d_steps)
        with tf.GradientTape() as tape:
            fake = self.generator(self.sample_inputs(noise, labels), training=True)
            fake_logits = self._discriminate(fake, labels, training=True)
            _, g_loss = _losses(self.loss_kind, real_logits, fake_logits)
            scaled = self.g_optimizer.scale_loss(tf.nn.compute_average_loss(g_loss))
        weights = self.generator.trainable_weights
        self.g_optimizer.apply_gradients(zip(tape.gradient(scaled, weights), weights))
        self._update_ema()
        return self._record(d_loss, g_loss, real_logits, fake_logits)

    def test_step(self, data):
        real, labels = self._unpack(data)
        noise = self._noise(tf.shape(real)[0], stream=self.d_steps + 1)
        real_logits, fake_logits = self._scores(real, labels, noise, training=False)
        d_loss, g_loss = _losses(self.loss_kind, real_logits, fake_logits)
        return self._record(d_loss, g_loss, real_logits, fake_logits)

    def _update_ema(self):
        """``ema ← decay·ema + (1−decay)·weights`` for trainable weights; BatchNorm statistics copied.

        Runs in cross-replica context (as Keras optimizers update variables),
        so mirrored copies of the average stay identical on every device.
        """
        decay = self.ema_decay
        pairs = list(zip(self.ema_generator.weights, self.generator.weights))

        def update(strategy):
            for ema, weight in pairs:
                if weight.trainable:
                    fn = lambda e, w: e.assign(decay * e + (1.0 - decay) * w)  # noqa: E731
                else:
                    fn = lambda e, w: e.assign(w)  # noqa: E731
                strategy.extended.update(ema.value, fn, args=(weight.value,))

        tf.__internal__.distribute.interim.maybe_merge_call(update, tf.distribute.get_strategy())
