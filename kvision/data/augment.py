"""Vectorised image augmentation of whole batches with stateless random ops.

Each function takes a uint8 batch ``[B, H, W, C]`` and a ``seed`` of shape
``[2]``; the same seed always gives the same result, so a seeded pipeline is
reproducible however tf.data schedules its work. No op changes the shape or
leaves the 0..255 range.
"""

import tensorflow as tf


def _reflect(index, size):
    """Map indices in ``[-size + 1, 2 * size - 2]`` into the image as ``tf.pad(mode="REFLECT")`` does."""
    return (size - 1) - tf.abs((size - 1) - tf.abs(index))


def random_crop_with_padding(images, padding, seed):
    """Pad by ``padding`` on each side and crop a random ``H x W`` window per image.

    Pads by reflection when the image is larger than ``padding`` (no black
    borders for the model to learn), otherwise with zeros. The padded batch is
    never built: each output row and column is gathered straight from its
    source, which is several times faster than ``tf.pad`` with ``REFLECT``.
    """
    height, width = images.shape[1], images.shape[2]
    batch = tf.shape(images)[0]
    offsets = tf.random.stateless_uniform(
        [batch, 2], seed=seed, minval=-padding, maxval=padding + 1, dtype=tf.int32
    )
    rows = offsets[:, :1] + tf.range(height)[None, :]  # (B, H), in [-p, H - 1 + p]
    cols = offsets[:, 1:] + tf.range(width)[None, :]  # (B, W), in [-p, W - 1 + p]
    if padding < min(height, width):
        rows, cols = _reflect(rows, height), _reflect(cols, width)
        inside = None
    else:
        row_inside = (rows >= 0) & (rows < height)  # (B, H)
        col_inside = (cols >= 0) & (cols < width)  # (B, W)
        inside = row_inside[:, :, None, None] & col_inside[:, None, :, None]  # (B, H, W, 1)
        rows, cols = tf.clip_by_value(rows, 0, height - 1), tf.clip_by_value(cols, 0, width - 1)
    cropped = tf.gather(images, rows, axis=1, batch_dims=1)  # (B, H, W, C)
    cropped = tf.gather(cropped, cols, axis=2, batch_dims=1)  # (B, H, W, C)
    return cropped if inside is None else tf.where(inside, cropped, tf.zeros_like(cropped))


def random_flip_left_right(images, seed):
    """Mirror each image horizontally with probability 1/2."""
    flip = tf.random.stateless_uniform([tf.shape(images)[0]], seed=seed) < 0.5
    return tf.where(flip[:, None, None, None], tf.reverse(images, axis=[2]), images)


def random_cutout(images, size, seed):
    """Erase one ``size x size`` square per image, centred anywhere in it.

    The square is filled with the image's mean colour: in the raw 0..255
    scale that plays the role of cutout's zero in normalised space
    (DeVries & Taylor, https://arxiv.org/abs/1708.04552). Squares near the
    border are clipped, as in the paper.
    """
    height, width = images.shape[1], images.shape[2]
    batch = tf.shape(images)[0]
    seed_y, seed_x = tf.unstack(tf.random.experimental.stateless_split(seed, num=2))
    top = tf.random.stateless_uniform([batch, 1, 1], seed=seed_y, minval=0, maxval=height, dtype=tf.int32)
    left = tf.random.stateless_uniform([batch, 1, 1], seed=seed_x, minval=0, maxval=width, dtype=tf.int32)
    top, left = top - size // 2, left - size // 2
    rows = tf.range(height)[None, :, None]
    cols = tf.range(width)[None, None, :]
    inside = (rows >= top) & (rows < top + size) & (cols >= left) & (cols < left + size)  # (B, H, W)
    mean = tf.reduce_mean(tf.cast(images, tf.float32), axis=[1, 2], keepdims=True)  # (B, 1, 1, C)
    fill = tf.cast(tf.round(mean), images.dtype)
    return tf.where(inside[..., None], fill, images)


def augment_batch(images, seed, *, crop_padding=4, flip=True, cutout=0):
    """Apply padding + random crop, horizontal flip and cutout to a uint8 batch.

    Returns:
        The augmented batch, still uint8 ``[B, H, W, C]``.
    """
    crop_seed, flip_seed, cutout_seed = tf.unstack(tf.random.experimental.stateless_split(seed, num=3))
    if crop_padding:
        images = random_crop_with_padding(images, crop_padding, crop_seed)
    if flip:
        images = random_flip_left_right(images, flip_seed)
    if cutout:
        images = random_cutout(images, cutout, cutout_seed)
    return images
