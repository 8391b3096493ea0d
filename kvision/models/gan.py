"""DCGAN and class-conditional DCGAN builders, and the ``GAN`` model that trains them.

Radford, Metz & Chintala 2015 (https://arxiv.org/abs/1511.06434): the
generator upsamples a latent vector with strided transposed convolutions,
BatchNorm and ReLU to a ``tanh`` image; the discriminator downsamples with
strided convolutions and LeakyReLU, without pooling. The conditional variant
(Mirza & Osindero 2014, https://arxiv.org/abs/1411.1784) concatenates a label
embedding to the latent vector; the discriminator takes the label in one of
three ways (``CONDITIONINGS``): as an extra image channel ("concat"), as a
projection of its features (Miyato & Koyama 2018,
https://arxiv.org/abs/1802.05637), or not at all but predicting it with an
auxiliary classifier head (ACGAN, Odena et al. 2017,
https://arxiv.org/abs/1610.09585).

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
CONDITIONINGS = ("concat", "projection", "auxiliary")
FAKE_LABELS = ("batch", "balanced")


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


def _label_input(num_classes):
    """The int32 ``label`` input of a conditional network, or None when unconditional."""
    if not num_classes:
        return None
    require(is_positive_int(num_classes), "num_classes must be a positive integer or None.", num_classes=num_classes)
    return keras.Input((), dtype="int32", name="label")


def _embed(label, num_classes, embedding_dim, name):
    """The learned embedding of ``label``."""
    return layers.Embedding(num_classes, embedding_dim, name=f"{name}_label_embedding")(label)


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
    label = _label_input(num_classes)
    x = noise if label is None else layers.Concatenate(name="noise_and_label")(
        [noise, _embed(label, num_classes, embedding_dim, name)])
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
                              conditioning="concat", embedding_dim=50, name="dcgan_discriminator"):
    """Build a DCGAN discriminator: ``image`` in ``[-1, 1]`` (and ``label``) → one real/fake ``logit``.

    The strided convolutions end in the flattened features φ(x) (layer
    ``flatten``) and a linear ψ (``logit``). A conditional discriminator
    takes the label as ``conditioning`` says:

    - "concat": an embedding mapped to an extra input channel;
    - "projection": logit = ψ(φ(x)) + ⟨V·onehot(y), φ(x)⟩, V a learned
      class embedding of φ's size (``label_projection``), so the label
      acts as a class-specific linear read-out of the features;
    - "auxiliary": no label input; a second output ``class_logits`` (a
      linear classifier on φ(x)) predicts the class, and ``GAN`` adds its
      cross-entropy to both losses.

    Args:
        input_shape: the image ``(side, side, channels)``; side 7·2^k or 8·2^k.
        num_classes: classes to condition on; None: unconditional.
        filters: channels of the first strided convolution, doubled at each.
        dropout: dropout after each LeakyReLU (0: none).
        spectral_norm: spectral normalisation (Miyato et al. 2018) of every
            convolution and dense kernel, the projection's class embedding
            included (a one-hot ``Dense``, since Keras' wrapper casts an
            ``Embedding``'s output to its integer input type).
        conditioning: one of ``CONDITIONINGS``; unused when unconditional.
        embedding_dim: size of the "concat" label embedding.
    """
    _, steps = _upsamplings(input_shape)
    require(0 <= dropout < 1, "dropout must be in [0, 1).", dropout=dropout)
    require(conditioning in CONDITIONINGS, f"conditioning must be one of {', '.join(CONDITIONINGS)}.",
            conditioning=conditioning)

    def normalise(layer):  # the wrapper keeps the layer's dtype policy: float32 logits under mixed precision
        if not spectral_norm:
            return layer
        return layers.SpectralNormalization(layer, dtype=layer.dtype_policy, name=f"{layer.name}_sn")

    image = keras.Input(tuple(input_shape), name="image")
    label = _label_input(num_classes)
    conditioning = None if label is None else conditioning
    x = image
    if conditioning == "concat":
        height, width, _ = input_shape
        embedded = _embed(label, num_classes, embedding_dim, name)
        plane = layers.Reshape((height, width, 1), name="label_plane")(
            normalise(layers.Dense(height * width, name="label_map"))(embedded))
        x = layers.Concatenate(name="image_and_label")([image, plane])
    for step in range(steps):
        x = normalise(layers.Conv2D(filters * 2**step, 4, strides=2, padding="same", name=f"down{step + 1}"))(x)
        x = layers.LeakyReLU(0.2, name=f"down{step + 1}_lrelu")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"down{step + 1}_dropout")(x)
    features = layers.Flatten(name="flatten")(x)  # φ(x)
    if conditioning == "projection":
        psi = normalise(layers.Dense(1, dtype="float32", name="unconditional_logit"))(features)
        one_hot = layers.CategoryEncoding(num_classes, output_mode="one_hot", name="label_one_hot")(label)
        class_vector = normalise(layers.Dense(features.shape[-1], use_bias=False, dtype="float32",
                                              name="label_projection"))(one_hot)  # V·onehot(y), like φ(x)
        projection = layers.Dot(axes=1, dtype="float32", name="projection")([class_vector, features])
        return keras.Model([image, label], layers.Add(dtype="float32", name="logit")([psi, projection]), name=name)
    logit = normalise(layers.Dense(1, dtype="float32", name="logit"))(features)
    if conditioning == "auxiliary":
        classes = normalise(layers.Dense(num_classes, dtype="float32", name="class_logits"))(features)
        return keras.Model([image], [logit, classes], name=name)
    return keras.Model([image] if conditioning is None else [image, label], logit, name=name)


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


def _class_loss(class_logits, labels):
    """Per-example ``[B, 1]`` cross-entropy of an auxiliary classifier's logits, shaped like the GAN losses."""
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels, class_logits)[:, None]


class GAN(keras.Model):
    """A generator and discriminator trained adversarially by ``fit``.

    ``train_step`` runs ``d_steps`` discriminator updates then one generator
    update per batch of raw 0..255 images (with int labels when conditional),
    and updates an exponential moving average of the generator's weights,
    ``ema_generator``, the one to sample from and export. Losses are averaged
    over the global batch and noise is drawn per replica from a stateless
    seed, so the same code runs under any ``tf.distribute`` strategy. A
    discriminator with a second output (``conditioning="auxiliary"``) is an
    ACGAN's: the cross-entropy of its class logits on real and fake images
    is added to the discriminator's loss, and on fakes to the generator's.

    Args:
        generator, discriminator: from ``build_dcgan_generator`` /
            ``build_dcgan_discriminator`` (or any models with the same inputs).
        ema_decay: decay of the generator's weight average per step.
        d_steps: discriminator updates per generator update.
        seed: seed of the noise stream.
        fake_labels: the classes a conditional generator is asked for: the
            real batch's ("batch"), or "balanced": every class equally often
            in each batch (±1), independent of the real batch, as the
            projection and BigGAN papers sample them.
    """

    def __init__(self, generator, discriminator, *, ema_decay=0.999, d_steps=1, seed=0, fake_labels="batch", **kwargs):
        super().__init__(**kwargs)
        require(0 <= ema_decay < 1, "ema_decay must be in [0, 1).", ema_decay=ema_decay)
        require(is_positive_int(d_steps), "d_steps must be a positive integer.", d_steps=d_steps)
        require(fake_labels in FAKE_LABELS, f"fake_labels must be one of {', '.join(FAKE_LABELS)}.",
                fake_labels=fake_labels)
        self.generator = generator
        self.discriminator = discriminator
        self.ema_generator = keras.models.clone_model(generator)
        self.ema_generator.set_weights(generator.get_weights())
        self.num_classes = generator_classes(generator)
        self.conditional = self.num_classes is not None
        self.label_input = len(discriminator.inputs) == 2
        self.auxiliary = len(discriminator.outputs) == 2
        self.fake_labels = fake_labels
        if self.conditional != (self.label_input or self.auxiliary):
            raise ModelError(
                "A conditional generator needs a discriminator that takes the label or predicts it (and an "
                "unconditional one neither). Received: generator inputs "
                f"{[i.name for i in generator.inputs]}, discriminator inputs {[i.name for i in discriminator.inputs]} "
                f"and {len(discriminator.outputs)} output(s)"
            )
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

    @staticmethod
    def _replicas():
        """``(replicas in sync, this replica's index)``; ``(1, 0)`` outside a strategy."""
        context = tf.distribute.get_replica_context()
        return (context.num_replicas_in_sync, context.replica_id_in_sync_group) if context else (1, 0)

    def _noise(self, batch_size, stream):
        """This replica's slice of the global batch's noise for this step and ``stream``.

        The noise of the whole global batch depends only on (seed, step,
        stream), so 1 device and N devices see the same noise per example.
        """
        replicas, replica = self._replicas()
        step = tf.cast(self.g_optimizer.iterations, tf.int32)
        seed = tf.stack([tf.constant(self.seed * 1000 + stream, tf.int32), step])
        noise = tf.random.stateless_normal((batch_size * replicas, self.latent_dim), seed=seed)
        return noise[replica * batch_size : (replica + 1) * batch_size]

    def _fake_labels(self, labels, batch_size, stream):
        """The classes asked of the generator for this step and ``stream`` (None when unconditional).

        "balanced": example ``i`` of draw ``d`` (step·(d_steps+2) + stream) of
        the global batch asks for class (d·global batch + i) mod classes, so
        each batch cycles through the classes and consecutive draws carry on
        where the last stopped: the same labels on 1 and N devices.
        """
        if self.fake_labels == "batch" or not self.conditional:
            return labels
        replicas, replica = self._replicas()
        draw = tf.cast(self.g_optimizer.iterations, tf.int32) * (self.d_steps + 2) + stream
        start = draw * batch_size * replicas + replica * batch_size
        return (tf.range(batch_size) + start) % self.num_classes

    def _unpack(self, data):
        images, labels, _ = keras.utils.unpack_x_y_sample_weight(data)
        if self.conditional and labels is None:
            raise ValueError("A conditional GAN trains on (images, labels) batches; the batch has no labels.")
        real = tf.cast(images, tf.float32) / 127.5 - 1.0
        return real, (tf.cast(labels, tf.int32) if self.conditional else None)

    def _discriminate(self, images, labels, training):
        """``(real/fake logits [B, 1], class logits [B, classes] or None)`` of the discriminator."""
        outputs = self.discriminator([images, labels] if self.label_input else [images], training=training)
        return tuple(outputs) if self.auxiliary else (outputs, None)

    def _game(self, real, labels, noise, fake_labels, training):
        """Per-example ``(d_loss, g_loss)`` of one pass of both networks, and its real and fake logits."""
        fake = self.generator(self.sample_inputs(noise, fake_labels), training=training)
        real_logits, real_classes = self._discriminate(real, labels, training)
        fake_logits, fake_classes = self._discriminate(fake, fake_labels, training)
        d_loss, g_loss = _losses(self.loss_kind, real_logits, fake_logits)
        if self.auxiliary:
            d_loss += _class_loss(real_classes, labels) + _class_loss(fake_classes, fake_labels)
            g_loss += _class_loss(fake_classes, fake_labels)
        return d_loss, g_loss, real_logits, fake_logits

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
            noise, fake_labels = self._noise(batch_size, step), self._fake_labels(labels, batch_size, step)
            with tf.GradientTape() as tape:
                d_loss, _, real_logits, fake_logits = self._game(real, labels, noise, fake_labels, training=True)
                scaled = self.d_optimizer.scale_loss(tf.nn.compute_average_loss(d_loss))
            weights = self.discriminator.trainable_weights
            self.d_optimizer.apply_gradients(zip(tape.gradient(scaled, weights), weights))
        noise, fake_labels = self._noise(batch_size, self.d_steps), self._fake_labels(labels, batch_size, self.d_steps)
        with tf.GradientTape() as tape:
            fake = self.generator(self.sample_inputs(noise, fake_labels), training=True)
            fake_logits, fake_classes = self._discriminate(fake, fake_labels, training=True)
            _, g_loss = _losses(self.loss_kind, real_logits, fake_logits)
            if self.auxiliary:
                g_loss += _class_loss(fake_classes, fake_labels)
            scaled = self.g_optimizer.scale_loss(tf.nn.compute_average_loss(g_loss))
        weights = self.generator.trainable_weights
        self.g_optimizer.apply_gradients(zip(tape.gradient(scaled, weights), weights))
        self._update_ema()
        return self._record(d_loss, g_loss, real_logits, fake_logits)

    def test_step(self, data):
        real, labels = self._unpack(data)
        batch_size, stream = tf.shape(real)[0], self.d_steps + 1
        noise, fake_labels = self._noise(batch_size, stream), self._fake_labels(labels, batch_size, stream)
        d_loss, g_loss, real_logits, fake_logits = self._game(real, labels, noise, fake_labels, training=False)
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
