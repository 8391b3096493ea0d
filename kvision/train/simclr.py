"""SimCLR: self-supervised pretraining of an image encoder by contrasting two augmented views.

Each unlabelled image is augmented twice; an encoder and a small projection
head map both views to vectors, and the NT-Xent loss pulls the two views of
an image together while pushing them away from the views of every other
image in the batch (Chen et al. 2020, https://arxiv.org/abs/2002.05709).
After pretraining the projection head is dropped and the encoder's features
are evaluated with a linear probe or fine-tuned on a few labels.

Everything here works on raw 0..255 images, as every kvision model does.
"""

import contextlib
import functools

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from kvision.data import make_pipeline
from kvision.data.augment import simclr_views
from kvision.data.dataset import check_split
from kvision.data.decode import ImageLimits
from kvision.data.stream import CROP_SCALE, StreamSplit
from kvision.data.stream_checks import naming_bad_images
from kvision.models.common import is_positive_int, require
from kvision.train.engine import (build_with_policy, check_stream_options, compile_run, finished_checkpoint, fit_run,
                                  run_result, stream_inputs)
from kvision.train.strategy import get_strategy, global_batch_size


# === Loss and metric ===


def _global_views(z1, z2):
    """The views of the whole global batch, and where this replica's examples start in it.

    Under a strategy with several replicas the negatives come from every
    replica, as in SimCLR's cross-core batch; gradients flow back through the
    all-gather. On one replica the local views are the global batch.
    """
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return z1, z2, 0
    z1_all, z2_all = context.all_gather([z1, z2], axis=0)
    return z1_all, z2_all, tf.cast(context.replica_id_in_sync_group, tf.int32) * tf.shape(z1)[0]


def contrastive_terms(z1, z2, temperature=0.1):
    """Per-anchor NT-Xent losses and hits for the 2n views ``[z1; z2]``.

    Each of the 2n anchors is scored against the 2N views of the global batch
    (N = n on one replica) but itself, by cosine similarity / ``temperature``;
    its positive is the other view of the same image, the 2N − 2 others are
    negatives. The loss is the softmax cross entropy of the positive; a hit
    is an anchor whose most similar other view is its positive.

    Returns:
        ``(losses, hits)``, float32 ``(2n,)`` each.
    """
    z1, z2 = tf.cast(z1, tf.float32), tf.cast(z2, tf.float32)
    z1_all, z2_all, offset = _global_views(z1, z2)
    anchors = tf.math.l2_normalize(tf.concat([z1, z2], 0), axis=1)  # (2n, D)
    candidates = tf.math.l2_normalize(tf.concat([z1_all, z2_all], 0), axis=1)  # (2N, D)
    total = tf.shape(z1_all)[0]
    index = offset + tf.range(tf.shape(z1)[0])  # this replica's examples in the global batch
    own = tf.concat([index, index + total], 0)  # (2n,) each anchor's own column
    positive = tf.concat([index + total, index], 0)  # (2n,) the other view of the same image
    logits = tf.matmul(anchors, candidates, transpose_b=True) / temperature  # (2n, 2N)
    logits -= 1e9 * tf.one_hot(own, 2 * total)  # an anchor is never its own candidate
    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=positive, logits=logits)
    hits = tf.cast(tf.equal(tf.argmax(logits, axis=1, output_type=tf.int32), positive), tf.float32)
    return losses, hits


def nt_xent_loss(z1, z2, temperature=0.1):
    """The normalised-temperature cross entropy of SimCLR, averaged over all 2N anchors.

    Args:
        z1, z2: ``(N, D)`` projections of the two views; row i of each comes
            from image i.
        temperature: divides the cosine similarities; lower sharpens the softmax.
    """
    return tf.reduce_mean(contrastive_terms(z1, z2, temperature)[0])


def contrastive_accuracy(z1, z2):
    """Share of the 2N anchors whose most similar other view is the other view of the same image."""
    return tf.reduce_mean(contrastive_terms(z1, z2)[1])


# === The two views as a dataset ===


def view_batches(batches, *, seed=None, **augmentation):
    """A dataset of ``(images, labels)`` batches as ``(view1, view2)`` batches: ``simclr_views`` of each, prefetched.

    The one views map of the in-memory and the streamed input: one vectorised
    map per batch, its seed drawn from a ``seed``ed stream and new every
    epoch; labels are dropped.
    """
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    views = tf.data.Dataset.zip((batches, seeds)).map(
        lambda batch, batch_seed: simclr_views(batch[0], batch_seed, **augmentation),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=seed is not None,
    )
    return views.prefetch(tf.data.AUTOTUNE)


def simclr_pipeline(images, *, batch_size, seed=None, **augmentation):
    """Unlabelled uint8 ``images`` as a ``tf.data.Dataset`` of ``(view1, view2)`` float32 batches.

    Shuffled every epoch, batched (dropping the last partial batch, so every
    anchor has the same number of negatives), two views augmented per batch
    (``view_batches``). Reproducible under a ``seed``.
    """
    batches = make_pipeline(images, np.zeros(len(images), np.int64), batch_size=batch_size, training=True,
                            seed=seed, crop_padding=0, flip=False)  # shuffled float32 batches; labels unused
    return view_batches(batches, seed=seed, **augmentation)


# === The training wrapper ===


class SimCLR(keras.Model):
    """An encoder and a projection head trained by ``fit`` on batches of two views.

    ``train_step`` encodes both views in one pass (BatchNorm sees the whole
    2N batch), projects them and minimises the NT-Xent loss; the negatives are
    the whole global batch under any ``tf.distribute`` strategy, and the
    head's BatchNorm is synchronised across replicas (the paper's global BN;
    BatchNorm layers inside the encoder keep per-replica statistics). It logs
    ``loss`` and ``contrastive_accuracy``. The encoder is ``.network``: what
    the engine's checkpoints save and what ``call`` runs; the projection head
    is only used for training, as in the paper.

    Args:
        encoder: a model mapping raw 0..255 images to a feature vector, e.g.
            ``kvision.models.common.classifier_backbone(build(name, shape, 1))``.
        projection_dim: size of the projection the loss compares.
        hidden_dim: width of the head's hidden layer; default the encoder's
            feature size.
        temperature: NT-Xent temperature.
    """

    def __init__(self, encoder, *, projection_dim=128, hidden_dim=None, temperature=0.1, **kwargs):
        super().__init__(**kwargs)
        require(len(encoder.output_shape) == 2, "The encoder must output a feature vector (batch, features).",
                output_shape=encoder.output_shape)
        require(is_positive_int(projection_dim), "projection_dim must be a positive integer.",
                projection_dim=projection_dim)
        require(hidden_dim is None or is_positive_int(hidden_dim), "hidden_dim must be a positive integer or None.",
                hidden_dim=hidden_dim)
        require(isinstance(temperature, (int, float)) and temperature > 0, "temperature must be positive.",
                temperature=temperature)
        features = encoder.output_shape[-1]
        self.network = encoder
        self.projection = keras.Sequential([
            keras.Input((features,)),
            layers.Dense(hidden_dim or features, use_bias=False, name="projection_hidden"),
            layers.BatchNormalization(synchronized=True, name="projection_bn"),
            layers.ReLU(name="projection_relu"),
            layers.Dense(projection_dim, dtype="float32", name="projection_out"),
        ], name="projection_head")
        self.temperature = float(temperature)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in ("loss", "contrastive_accuracy")}
        self.built = True  # the encoder and head are built functional models

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, inputs, training=False):
        """The encoder's features of raw 0..255 images."""
        return self.network(inputs, training=training)

    def _contrast(self, data, training):
        """Per-anchor losses and hits of a ``(view1, view2)`` batch."""
        view1, view2 = data[0], data[1]
        count = tf.shape(view1)[0]
        z = self.projection(self.network(tf.concat([view1, view2], 0), training=training), training=training)
        return contrastive_terms(z[:count], z[count:], self.temperature)

    def _record(self, losses, hits):
        self.trackers["loss"].update_state(losses)
        self.trackers["contrastive_accuracy"].update_state(hits)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def train_step(self, data):
        with tf.GradientTape() as tape:
            losses, hits = self._contrast(data, training=True)
            loss = tf.nn.compute_average_loss(losses)  # mean over the global batch's 2N anchors
            if self.losses:  # L2 weight decay (kvision.train.apply_weight_decay)
                loss += tf.nn.scale_regularization_loss(tf.add_n(self.losses))
            scaled = self.optimizer.scale_loss(loss)
        weights = self.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(scaled, weights), weights))
        return self._record(losses, hits)

    def test_step(self, data):
        return self._record(*self._contrast(data, training=False))


def fit_simclr(
    encoder_fn,
    images,
    *,
    run_dir,
    epochs=100,
    batch_size=256,
    optimizer="adamw",
    learning_rate=1e-3,
    momentum=0.9,
    weight_decay=1e-4,
    schedule="cosine",
    warmup_epochs=0,
    temperature=0.1,
    projection_dim=128,
    hidden_dim=None,
    augmentation=None,
    image_shape=None,
    crop="pad",
    crop_scale=CROP_SCALE,
    skip_bad_images=False,
    image_limits=ImageLimits(),
    data_service=None,
    seed=None,
    mixed_precision=False,
    xla=False,
    steps_per_execution=1,
    strategy=None,
    callbacks=(),
    verbose=None,
):
    """Pretrain the encoder ``encoder_fn()`` builds with SimCLR on unlabelled ``images``: an array or a stream.

    ``batch_size`` is per replica (the paper's large batches give more
    negatives; the global batch is ``batch_size × replicas``). Runs through
    the engine's ``fit_run``: TensorBoard, CSV history, resumable from
    ``run_dir`` when killed, and ``checkpoints/best.keras`` (lowest loss) and
    ``last.keras`` holding the encoder alone. Called again on a finished run,
    it loads the last checkpoint instead of training.

    A streamed split (``StreamSplit``), for sets too large for memory, is
    read and decoded inside ``tf.data`` as ``fit_classifier`` reads one
    (``stream_inputs``): an epoch is ``count // global batch`` steps of a
    repeated stream, each input pipeline of a multi-replica strategy reads
    its own part, and an image that fails to decode stops the run with a
    ``DataError`` naming its file, unless ``skip_bad_images``. Its batches
    then get the same two views as an array's (``view_batches``).

    Args:
        encoder_fn: zero-argument callable returning an encoder (raw 0..255
            images → feature vector); called inside the strategy scope.
        images: uint8 ``(N, H, W, C)``, or a ``StreamSplit``; labels, if
            any, are not used.
        run_dir: where logs, checkpoints and the backup go.
        optimizer, learning_rate, momentum, weight_decay, schedule,
            warmup_epochs: as for ``kvision.train.fit_classifier``.
        temperature, projection_dim, hidden_dim: see ``SimCLR``.
        augmentation: keyword arguments of ``kvision.data.augment.simclr_augment``.
        image_shape: ``(H, W, C)`` a stream's images are decoded and resized
            to, the encoder's input; needed for a stream (its files may
            differ in size), for arrays only checked against theirs.
        crop, crop_scale, skip_bad_images, image_limits, data_service: of a
            stream, as for ``fit_classifier``; ``crop="inception"`` decodes a
            random window of ``crop_scale`` of each image before the views'
            own crops (``augmentation``'s ``crop_scale``).
        seed: seeds weights, shuffling and augmentation.
        mixed_precision: build under a mixed policy (``engine.dtype_policy``).
        xla: compile the train step with XLA.

    Returns:
        A ``TrainResult`` whose ``model`` is the trained encoder.
    """
    streamed = isinstance(images, StreamSplit)
    check_stream_options(streamed, crop, data_service)
    if streamed:
        require(isinstance(image_shape, (tuple, list)) and len(image_shape) == 3
                and all(is_positive_int(side) for side in image_shape),
                "A streamed split needs image_shape=(height, width, channels), the encoder's input.",
                image_shape=image_shape)
    else:
        check_split(images, np.zeros(len(images)), "fit_simclr")
        require(image_shape is None or tuple(image_shape) == images.shape[1:],
                "image_shape must be the images' (height, width, channels).",
                image_shape=image_shape, images=images.shape)
    count = images.count if streamed else len(images)
    strategy = strategy or get_strategy()
    global_batch = global_batch_size(strategy, batch_size, count)
    steps_per_epoch = count // global_batch  # the last partial batch is dropped
    if seed is not None:
        keras.utils.set_random_seed(seed)
    with strategy.scope():
        model = build_with_policy(
            lambda: SimCLR(encoder_fn(), projection_dim=projection_dim, hidden_dim=hidden_dim, temperature=temperature),
            mixed_precision,
        )
        compile_run(model, steps_per_epoch=steps_per_epoch, epochs=epochs, optimizer=optimizer,
                    learning_rate=learning_rate, momentum=momentum, weight_decay=weight_decay, schedule=schedule,
                    warmup_epochs=warmup_epochs, xla=xla, steps_per_execution=steps_per_execution)
        model.optimizer.build(model.trainable_variables)  # slots in the strategy scope, not in the first step
    checkpoint = finished_checkpoint(run_dir, epochs, restored_best=False)
    if checkpoint is not None:
        model.network.load_weights(checkpoint)
        return run_result(model.network, {}, run_dir, strategy)
    augmentation = augmentation or {}
    guard = contextlib.nullcontext()
    if streamed:
        if not skip_bad_images:
            guard = naming_bad_images([images], image_shape[-1], image_limits)
        dataset, _ = stream_inputs(
            strategy, images, None, global_batch=global_batch, data_service=data_service,
            transform=functools.partial(view_batches, seed=seed, **augmentation), image_shape=tuple(image_shape),
            seed=seed, crop=crop, crop_scale=crop_scale, crop_padding=0, flip=False, limits=image_limits,
            skip_bad_images=skip_bad_images,
        )  # labels unused
    else:
        dataset = simclr_pipeline(images, batch_size=global_batch, seed=seed, **augmentation)
    with guard:
        return fit_run(model, dataset, None, run_dir=run_dir, epochs=epochs, monitor="loss", mode="min",
                       strategy=strategy, callbacks=callbacks, verbose=verbose,
                       steps_per_epoch=steps_per_epoch if streamed else None)


# === Evaluation ===


def encode(encoder, images, *, batch_size=256):
    """Features of ``encoder`` (in inference mode) on uint8 ``images``, in order, float32 ``(N, D)``."""
    dataset = tf.data.Dataset.from_tensor_slices(images).batch(batch_size).map(lambda x: tf.cast(x, tf.float32))
    return np.asarray(encoder.predict(dataset.prefetch(tf.data.AUTOTUNE), verbose=0), np.float32)


def linear_probe(encoder, train, test, *, epochs=30, batch_size=256, learning_rate=1e-3, verbose=0):
    """Test accuracy of a linear softmax classifier on the frozen ``encoder``'s features.

    SimCLR's standard evaluation: the features of both splits are computed
    once, standardised with the training features' mean and standard
    deviation, and one ``Dense`` layer is trained on them with Adam. Much
    faster than training through the encoder (``kvision.train.finetune``).

    Args:
        encoder: raw 0..255 images → feature vector.
        train, test: ``(uint8 images NHWC, int labels)``.
        epochs, batch_size, learning_rate: of the linear classifier.
        verbose: Keras' ``fit`` verbosity.

    Returns:
        The test accuracy, a float in [0, 1].
    """
    for name, (images, labels) in (("train", train), ("test", test)):
        check_split(images, labels, f"linear_probe ({name} split)")
    features = encode(encoder, train[0], batch_size=batch_size)
    test_features = encode(encoder, test[0], batch_size=batch_size)
    mean, std = features.mean(axis=0), features.std(axis=0) + 1e-6
    num_classes = int(max(train[1].max(), test[1].max())) + 1
    probe = keras.Sequential([
        keras.Input((features.shape[1],)),
        layers.Dense(num_classes, kernel_initializer="zeros", name="logits"),  # convex problem: zeros are a fine start
    ], name="linear_probe")
    probe.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    probe.fit((features - mean) / std, train[1], epochs=epochs, batch_size=batch_size, verbose=verbose)
    return float(probe.evaluate((test_features - mean) / std, test[1], verbose=0, return_dict=True)["accuracy"])
