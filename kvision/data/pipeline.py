"""``make_pipeline``: an in-memory image set as a batched, augmented ``tf.data.Dataset``.

Order of operations: cache the uint8 examples, shuffle, batch, then augment
whole batches in one parallel ``map`` (vectorised ops, no per-example work),
then prefetch. Images leave the pipeline as float32 in the raw 0..255 range;
models own their rescaling and normalisation.
"""

import numbers

import numpy as np
import tensorflow as tf

from kvision.data.augment import augment_batch
from kvision.data.dataset import check_labels, check_split
from kvision.errors import DataError


def _check_probability(name, value):
    """``DataError`` unless ``value`` is a number in [0, 1]."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not 0 <= value <= 1:
        raise DataError(f"Expected {name} to be a probability in [0, 1]. Received: {name}={value!r}")


def _check_int(name, value, minimum, allow_none=False):
    if value is None and allow_none:
        return
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        expected = f"an int >= {minimum}" + (" or None" if allow_none else "")
        raise DataError(f"Expected {name} to be {expected}. Received: {name}={value!r}")


def check_augmentation(crop_padding, cutout, random_erasing):
    """``DataError`` unless ``augment_batch``'s settings are valid; ``make_pipeline`` and ``stream_pipeline`` share it."""
    _check_int("crop_padding", crop_padding, 0)
    _check_int("cutout", cutout, 0)
    _check_probability("random_erasing", random_erasing)


def _class_turns(images, labels, *, seed, cache):
    """``len(images)`` examples taking the classes in turn, each class from its own reshuffled, repeated stream."""
    classes = np.unique(labels)
    streams = []
    for label in classes:
        mine = labels == label
        stream = tf.data.Dataset.from_tensor_slices((images[mine], labels[mine].astype(np.int64)))
        stream = stream.cache() if cache else stream
        streams.append(stream.shuffle(int(mine.sum()), seed=seed, reshuffle_each_iteration=True).repeat())
    turns = tf.data.Dataset.range(len(classes)).repeat()
    return tf.data.Dataset.choose_from_datasets(streams, turns).take(len(images))


def _validate(images, labels, batch_size, seed, crop_padding, cutout, random_erasing, shuffle_buffer, num_classes):
    check_split(images, labels, "make_pipeline")
    if len(images) == 0:
        raise DataError(
            f"make_pipeline: expected at least one image. Received: images of shape {images.shape}"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"make_pipeline: expected integer labels. Received: dtype {labels.dtype}")
    _check_int("batch_size", batch_size, 1)
    _check_int("seed", seed, 0, allow_none=True)
    check_augmentation(crop_padding, cutout, random_erasing)
    _check_int("shuffle_buffer", shuffle_buffer, 1, allow_none=True)
    _check_int("num_classes", num_classes, 1, allow_none=True)
    if num_classes is not None:
        check_labels(labels, num_classes, "make_pipeline")


def make_pipeline(
    images,
    labels,
    *,
    batch_size,
    training,
    seed=None,
    crop_padding=4,
    flip=True,
    cutout=0,
    random_erasing=0.0,
    shuffle_buffer=None,
    cache=True,
    num_classes=None,
    drop_remainder=None,
    balance_classes=False,
):
    """Build the input pipeline for training or evaluation.

    Training shuffles (reshuffling every epoch), drops the last partial batch
    by default and augments each batch: reflect-padding by ``crop_padding``
    and a random crop back to ``H x W``, a horizontal flip, an optional
    ``cutout``-pixel square erased and optional random erasing. Evaluation keeps the order and the last
    partial batch. With a ``seed`` the pipeline is deterministic: two
    pipelines built with the same seed yield identical batches, epoch by
    epoch. Without one, tf.data may reorder work for speed.

    Sharding is set to ``DATA`` so that ``tf.distribute`` strategies split
    the in-memory examples between workers explicitly.

    Args:
        images: uint8 array ``(N, H, W, C)``.
        labels: integer array ``(N,)``.
        batch_size: examples per batch (the global batch under a strategy).
        training: shuffle and augment (True) or keep order (False).
        seed: makes shuffling and augmentation reproducible; ``None`` is random.
        crop_padding: pixels of padding for the random crop; 0 disables it.
        flip: random horizontal flips.
        cutout: side in pixels of the erased square; 0 disables it.
        random_erasing: probability that an image has a random rectangle
            replaced by noise (Zhong et al.; ``augment.random_erase``); 0
            disables it.
        shuffle_buffer: shuffle buffer size; ``None`` is the whole dataset.
        cache: cache the examples in memory after the first epoch.
        num_classes: if given, labels become float32 one-hot vectors.
        drop_remainder: drop the last partial batch; ``None`` means ``training``.
        balance_classes: training only: batches take the classes in turn
            (c0, c1, …, c0, …) from a reshuffled, repeated stream per class,
            so every batch holds each class equally often (±1) and an epoch
            is still ``len(images)`` examples (a rare class is repeated
            within it, a common one thinned).

    Returns:
        A ``tf.data.Dataset`` of ``(images float32 [B, H, W, C] in 0..255,
        labels int64 [B] or float32 [B, num_classes])``.
    """
    _validate(images, labels, batch_size, seed, crop_padding, cutout, random_erasing, shuffle_buffer, num_classes)
    if balance_classes and not training:
        raise DataError("make_pipeline: balance_classes reorders training batches only. Received: training=False")
    deterministic = seed is not None or not training
    augmentation = dict(crop_padding=crop_padding, flip=flip, cutout=cutout, random_erasing=random_erasing)
    augment = training and any(augmentation.values())

    if balance_classes:
        dataset = _class_turns(images, labels, seed=seed, cache=cache)
    else:
        dataset = tf.data.Dataset.from_tensor_slices((images, labels.astype(np.int64)))
        if cache:
            dataset = dataset.cache()
        if training:
            dataset = dataset.shuffle(shuffle_buffer or len(images), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(
        batch_size,
        drop_remainder=training if drop_remainder is None else bool(drop_remainder),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=deterministic,
    )

    def finish(batch_images, batch_labels, batch_seed=None):
        if batch_seed is not None:
            batch_images = augment_batch(batch_images, batch_seed, **augmentation)
        if num_classes is not None:
            batch_labels = tf.one_hot(batch_labels, num_classes, dtype=tf.float32)
        return tf.cast(batch_images, tf.float32), batch_labels

    if augment:
        # One [2]-seed per batch from a seeded random stream that is redrawn every
        # epoch: reproducible across pipelines, different from epoch to epoch.
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        dataset = tf.data.Dataset.zip((dataset, seeds)).map(
            lambda batch, batch_seed: finish(*batch, batch_seed),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=deterministic,
        )
    else:
        dataset = dataset.map(finish, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)

    options = tf.data.Options()
    options.deterministic = deterministic
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)
