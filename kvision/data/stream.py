"""Streamed image datasets: examples read, decoded and augmented inside ``tf.data``, never held in memory whole.

Beside the in-memory ``ImageDataset`` (the fast path for small sets), a
``StreamedDataset`` describes data of any size on disk: an image folder,
TFRecord shards, a TFDS dataset. Each split knows how many examples it has
and how to read them as ``(encoded image bytes, label, id)``: listing files
happens in Python, reading happens in ``tf.data`` (``read``). The id (a file
path, or ``shard:index``) travels with each example so a bad one can be
named. ``stream_pipeline`` turns a split into batches: this worker's part of
the files, shuffled, decoded by the bounded decoder (``kvision.data.decode``)
and resized in parallel (an Inception training crop also flipped there),
augmented per batch, prefetched.
"""

import dataclasses
import functools
from collections.abc import Callable

import tensorflow as tf

from kvision.data.augment import augment_batch
from kvision.data.crop import CROPS, random_window, resize_to, resize_window
from kvision.data.decode import ImageLimits, decode_center, decode_image
from kvision.data.pipeline import check_augmentation
from kvision.errors import DataError

SPLITS = ("train", "validation", "test")
SHUFFLE_BUFFER = 10_000  # examples; a shuffled file order spreads the rest
CROP_SCALE = (0.08, 1.0)  # area fraction of an Inception training crop


@dataclasses.dataclass(frozen=True)
class StreamSplit:
    """One split of a ``StreamedDataset``.

    Attributes:
        count: examples in the split (all workers together).
        read: ``read(input_context=None, shuffle=False, seed=None)`` → a
            ``tf.data.Dataset`` of ``(encoded string, label int64, id string)``
            scalars. With a ``tf.distribute.InputContext`` it yields only this
            input pipeline's part (the parts are disjoint and together whole);
            with ``shuffle`` its files come in a seeded random order, new each
            epoch.
    """

    count: int
    read: Callable


@dataclasses.dataclass
class StreamedDataset:
    """A labelled image dataset streamed from where it lives.

    Attributes:
        name: dataset name, e.g. ``"folder"`` or ``"tfds:tf_flowers"``.
        class_names: label ``i`` means ``class_names[i]``.
        splits: ``{"train": StreamSplit, "test": …, "validation": …}``
            (validation when the source has or carves one).
        channels: 1 (every image grey) or 3.
        origin: where it was read from (a path, ``tfds:…``).
        image_size: ``(height, width)`` when every image has one size, else None.
        fingerprint: a digest of what was read (file names and sizes, or
            shard hashes), for the export's provenance.
    """

    name: str
    class_names: list
    splits: dict
    channels: int
    origin: str
    image_size: tuple | None = None
    fingerprint: str = ""

    def __post_init__(self):
        unknown = sorted(set(self.splits) - set(SPLITS))
        if unknown or "train" not in self.splits or "test" not in self.splits:
            raise DataError(f"{self.origin}: expected train and test splits (and maybe validation) with examples. "
                            f"Received: splits {sorted(self.splits)}")
        for split, stream in self.splits.items():
            if stream.count < 1:
                raise DataError(f"{self.origin}: expected examples in the {split} split. Received: none")
        if self.channels not in (1, 3):
            raise DataError(f"{self.origin}: expected 1 or 3 channels. Received: {self.channels}")

    @property
    def num_classes(self):
        return len(self.class_names)

    def counts(self):
        """``{split: examples}``."""
        return {split: stream.count for split, stream in self.splits.items()}


def load_example(encoded, image_shape, limits, *, crop="pad", seed=None, crop_scale=CROP_SCALE, flip=False):
    """One encoded image as the uint8 ``image_shape`` a model of ``crop`` mode sees (``kvision.data.crop``).

    With a ``seed`` (int ``[2]``; training, ``crop="inception"``) a random
    window of ``crop_scale`` of the area, and with ``flip`` mirrored
    left-right half the time; the seed is split between the two, so the
    window does not depend on ``flip``. Else the evaluation view: the
    central window (``"inception"``) or the whole image (``"pad"``), resized.
    """
    height, width, channels = image_shape
    if crop != "inception":
        image = resize_to(decode_image(encoded, channels, limits), (height, width))
    elif seed is None:
        return decode_center(encoded, image_shape, limits)
    else:
        window_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, num=2))
        window = functools.partial(random_window, seed=window_seed, scale=crop_scale)
        image = resize_window(decode_image(encoded, channels, limits, window=window), (height, width))
        if flip:
            # Here, one image under a cond, rather than on the batch: augment_batch's reverse and broadcast
            # tf.where over a uint8 batch of 64 at 224×224 cost about 1 ms of CPU per image.
            image = tf.image.stateless_random_flip_left_right(image, flip_seed)
    return tf.ensure_shape(image, image_shape)


def stream_pipeline(split, *, image_shape, batch_size, training, num_classes=None, seed=None, crop="pad",
                    crop_scale=CROP_SCALE, crop_padding=4, flip=True, cutout=0, random_erasing=0.0,
                    shuffle_buffer=SHUFFLE_BUFFER,
                    input_context=None, limits=ImageLimits(), skip_bad_images=False, drop_remainder=None):
    """Batches of a ``StreamSplit``: decoded, cropped and resized to ``image_shape``, augmented when ``training``.

    The streamed counterpart of ``make_pipeline``, with the same output.
    ``crop="pad"`` (small images) resizes whole images and, training, applies
    ``make_pipeline``'s batch augmentation (pad-and-crop, flip, cutout,
    random erasing).
    ``crop="inception"`` (large images) trains on a random-resized crop of
    each image (a JPEG decodes only its window), flipped as it is loaded,
    with a seed per example from a seeded stream, then cutout and random
    erasing per batch, and
    evaluates on the central 87.5 % window, as the exported signatures do
    (``kvision.data.crop``).
    Training reads the files in a shuffled order, shuffles examples in a
    ``shuffle_buffer``, and drops the last partial batch by default;
    evaluation keeps the order and every example.

    Args:
        split: the ``StreamSplit`` to read.
        image_shape: ``(H, W, C)`` the model takes; images are decoded to ``C``
            channels and brought to ``H × W``.
        batch_size: examples per batch (per input pipeline under a strategy).
        crop: "pad" or "inception" (``kvision.data.crop.CROPS``).
        crop_scale: ``(min, max)`` area fraction of an Inception training crop.
        input_context: a ``tf.distribute.InputContext``: read only this
            pipeline's part of the split.
        limits: ``ImageLimits`` of the decoder.
        skip_bad_images: drop examples that fail to decode instead of failing
            (``find_bad_images`` names them afterwards).
        Others: as for ``make_pipeline``; ``crop_padding`` applies to "pad" only.

    Returns:
        A ``tf.data.Dataset`` of ``(images float32 [B, H, W, C] in 0..255,
        labels int64 [B] or float32 [B, num_classes])``.
    """
    if crop not in CROPS:
        raise DataError(f"Expected crop to be one of {CROPS}. Received: crop={crop!r}")
    check_augmentation(crop_padding, cutout, random_erasing)
    deterministic = seed is not None or not training
    dataset = split.read(input_context=input_context, shuffle=training, seed=seed)
    if training:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    options = dict(num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)

    def load(encoded, label, _id, example_seed=None):
        image = load_example(encoded, image_shape, limits, crop=crop, seed=example_seed, crop_scale=crop_scale,
                             flip=flip)
        return image, label

    inception_training = training and crop == "inception"
    if inception_training:
        # One [2]-seed per example, redrawn every epoch: a new window and flip for each image each time it is seen.
        example_seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        dataset = tf.data.Dataset.zip((dataset, example_seeds)).map(
            lambda example, example_seed: load(*example, example_seed), **options
        )
    else:
        dataset = dataset.map(load, **options)
    if skip_bad_images:
        dataset = dataset.ignore_errors()
    dataset = dataset.batch(batch_size, drop_remainder=training if drop_remainder is None else bool(drop_remainder))
    # An Inception window is the crop and was flipped as it was loaded: its batches only take the erasing ops.
    batch_augmentation = dict(crop_padding=0 if inception_training else crop_padding,
                              flip=flip and not inception_training, cutout=cutout, random_erasing=random_erasing)

    def finish(images, labels, batch_seed=None):
        if batch_seed is not None:
            images = augment_batch(images, batch_seed, **batch_augmentation)
        if num_classes is not None:
            labels = tf.one_hot(labels, num_classes, dtype=tf.float32)
        return tf.cast(images, tf.float32), labels

    if training and any(batch_augmentation.values()):
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        dataset = tf.data.Dataset.zip((dataset, seeds)).map(
            lambda batch, batch_seed: finish(*batch, batch_seed), **options
        )
    else:
        dataset = dataset.map(finish, **options)
    options = tf.data.Options()
    options.deterministic = deterministic
    # The source already read only this pipeline's files (input_context); tf.distribute must not shard again.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)
