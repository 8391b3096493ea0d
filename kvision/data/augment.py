"""Vectorised image augmentation of whole batches with stateless random ops.

Each function takes a batch ``[B, H, W, C]`` in 0..255 and a ``seed`` of
shape ``[2]``; the same seed always gives the same result, so a seeded
pipeline is reproducible however tf.data schedules its work. No op changes
the shape or leaves the 0..255 range.

Two families: the supervised pipelines' ops on uint8 batches (padded random
crop, flip, cutout, random erasing: ``augment_batch``), and SimCLR's views on float batches
(random resized crop, colour jitter, Gaussian blur: ``simclr_augment``,
``simclr_views``), which ``kvision.train.simclr`` maps over its batches.
"""

import math

import numpy as np
import tensorflow as tf


# === The supervised pipelines' ops (uint8) ===


def _uniform(shape, seed, low, high):
    """Stateless float32 draws, uniform in ``[low, high)``."""
    return tf.random.stateless_uniform(shape, seed=seed, minval=low, maxval=high)


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


def random_erase(images, probability, seed, *, scale=(0.02, 0.4), ratio=(0.3, 1 / 0.3), attempts=10):
    """With ``probability``, replace a random rectangle of each image by random pixel values.

    Random erasing (Zhong et al., https://arxiv.org/abs/1708.04896): the
    rectangle covers a uniform share in ``scale`` of the image's area with an
    aspect ratio log-uniform in ``ratio`` (the paper's ``s_l, s_h, r_1``). As
    in torchvision's ``RandomErasing``, ``attempts`` rectangles are drawn per
    image and the first that fits inside it is used (an image where none fits
    is kept). The fill is uniform noise in 0..255 per pixel and channel (the
    paper's RE-R, its best on every dataset).
    """
    height, width = images.shape[1], images.shape[2]
    batch = tf.shape(images)[0]
    area_seed, ratio_seed, apply_seed, corner_seed, noise_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, num=5)
    )
    area = _uniform([batch, attempts], area_seed, *scale) * (height * width)
    aspect = tf.exp(_uniform([batch, attempts], ratio_seed, math.log(ratio[0]), math.log(ratio[1])))
    tall = tf.cast(tf.round(tf.sqrt(area * aspect)), tf.int32)  # (B, attempts) rectangle heights
    wide = tf.cast(tf.round(tf.sqrt(area / aspect)), tf.int32)  # (B, attempts) widths
    fits = (tall < height) & (wide < width)
    first = tf.argmax(tf.cast(fits, tf.int32), axis=1)  # (B,) the first attempt that fits
    tall, wide = (tf.gather(x, first, axis=1, batch_dims=1)[:, None, None] for x in (tall, wide))  # (B, 1, 1)
    erase = tf.reduce_any(fits, axis=1) & (_uniform([batch], apply_seed, 0.0, 1.0) < probability)  # (B,)
    corner = _uniform([batch, 2], corner_seed, 0.0, 1.0)
    top = tf.cast(corner[:, 0, None, None] * tf.cast(height - tall + 1, tf.float32), tf.int32)  # 0 … H − h
    left = tf.cast(corner[:, 1, None, None] * tf.cast(width - wide + 1, tf.float32), tf.int32)  # 0 … W − w
    rows = tf.range(height)[None, :, None]
    cols = tf.range(width)[None, None, :]
    inside = (rows >= top) & (rows < top + tall) & (cols >= left) & (cols < left + wide)  # (B, H, W)
    inside &= erase[:, None, None]
    noise = tf.random.stateless_uniform(tf.shape(images), seed=noise_seed, minval=0, maxval=256, dtype=tf.int32)
    return tf.where(inside[..., None], tf.cast(noise, images.dtype), images)


def augment_batch(images, seed, *, crop_padding=4, flip=True, cutout=0, random_erasing=0.0):
    """Apply padding + random crop, horizontal flip, cutout and random erasing to a uint8 batch.

    ``random_erasing`` is the probability that an image has a rectangle
    erased (``random_erase``; 0: off, Zhong et al. use 0.5).

    Returns:
        The augmented batch, still uint8 ``[B, H, W, C]``.
    """
    crop_seed, flip_seed, cutout_seed, erasing_seed = tf.unstack(tf.random.experimental.stateless_split(seed, num=4))
    if crop_padding:
        images = random_crop_with_padding(images, crop_padding, crop_seed)
    if flip:
        images = random_flip_left_right(images, flip_seed)
    if cutout:
        images = random_cutout(images, cutout, cutout_seed)
    if random_erasing:
        images = random_erase(images, random_erasing, erasing_seed)
    return images


# === SimCLR's two views of each image ===

# RGB → YIQ (rows: Y, I, Q). A hue shift is a rotation of the (I, Q) chroma plane.
_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], np.float32)
_RGB = np.linalg.inv(_YIQ).astype(np.float32)


def random_resized_crop(images, seed, *, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
    """A random crop of each image, resized back to ``H × W`` (bilinear).

    The crop covers a uniform share in ``scale`` of the image's area with a
    width/height ratio log-uniform in ``ratio`` (Inception-style), clipped to
    the image. Returns float32.
    """
    height, width = images.shape[1], images.shape[2]
    batch = tf.shape(images)[0]
    area_seed, ratio_seed, position_seed = tf.unstack(tf.random.experimental.stateless_split(seed, num=3))
    area = _uniform([batch], area_seed, *scale)
    aspect = tf.exp(_uniform([batch], ratio_seed, math.log(ratio[0]), math.log(ratio[1])))
    # Crop height and width as fractions of the image's: h·w = area, (w·W)/(h·H) = aspect.
    h = tf.minimum(tf.sqrt(area * width / (aspect * height)), 1.0)
    w = tf.minimum(tf.sqrt(area * aspect * height / width), 1.0)
    corner = _uniform([batch, 2], position_seed, 0.0, 1.0) * tf.stack([1.0 - h, 1.0 - w], axis=1)
    boxes = tf.concat([corner, corner + tf.stack([h, w], axis=1)], axis=1)  # (B, 4): y1, x1, y2, x2
    return tf.image.crop_and_resize(tf.cast(images, tf.float32), boxes, tf.range(batch), [height, width])


def color_jitter(images, seed, *, strength=0.5, probability=0.8, grayscale_probability=0.2):
    """SimCLR's colour distortion of a float 0..255 batch, per image.

    With ``probability``: brightness (a factor), contrast, and for RGB
    saturation and hue, of ranges ``0.8, 0.8, 0.8, 0.2 × strength`` as in the
    paper, in that order (the paper draws a random order). RGB images then
    turn gray with ``grayscale_probability``. Grayscale batches (one channel)
    get brightness and contrast only.
    """
    rgb = images.shape[-1] == 3
    batch = tf.shape(images)[0]
    seeds = tf.unstack(tf.random.experimental.stateless_split(seed, num=6))
    amount = 0.8 * strength

    def factor(factor_seed):
        return _uniform([batch, 1, 1, 1], factor_seed, max(0.0, 1.0 - amount), 1.0 + amount)

    x = images * factor(seeds[0])  # brightness
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    x = mean + (x - mean) * factor(seeds[1])  # contrast
    if rgb:
        gray = tf.tensordot(x, _YIQ[0], axes=[[3], [0]])[..., None]  # (B, H, W, 1) luma
        x = gray + (x - gray) * factor(seeds[2])  # saturation
        angle = 2 * math.pi * _uniform([batch, 1, 1], seeds[3], -0.2 * strength, 0.2 * strength)
        y, i, q = tf.unstack(tf.tensordot(x, _YIQ.T, axes=[[3], [0]]), axis=3)  # (B, H, W) each
        rotated = tf.stack([y, i * tf.cos(angle) - q * tf.sin(angle), i * tf.sin(angle) + q * tf.cos(angle)], axis=3)
        x = tf.tensordot(rotated, _RGB.T, axes=[[3], [0]])  # hue
    x = tf.clip_by_value(x, 0.0, 255.0)
    x = tf.where(_uniform([batch, 1, 1, 1], seeds[4], 0.0, 1.0) < probability, x, images)
    if rgb:
        gray = tf.tensordot(x, _YIQ[0], axes=[[3], [0]])[..., None]
        to_gray = _uniform([batch, 1, 1, 1], seeds[5], 0.0, 1.0) < grayscale_probability
        x = tf.where(to_gray, tf.tile(gray, [1, 1, 1, 3]), x)
    return x


def gaussian_blur(images, seed, *, sigma=(0.1, 2.0), probability=0.5):
    """Blur each image of a float batch with probability ``probability`` by a Gaussian of random sigma.

    The kernel spans 10% of the image side, as in the paper; ``sigma`` is in
    pixels. Separable, reflect-padded, one weighted sum per tap.
    """
    height, width = images.shape[1], images.shape[2]
    batch = tf.shape(images)[0]
    sigma_seed, apply_seed = tf.unstack(tf.random.experimental.stateless_split(seed, num=2))
    radius = max(1, round(0.05 * min(height, width)))
    taps = tf.range(-radius, radius + 1, dtype=tf.float32)  # (K,)
    spread = _uniform([batch, 1], sigma_seed, *sigma)
    weights = tf.exp(-tf.square(taps)[None] / (2 * tf.square(spread)))
    weights /= tf.reduce_sum(weights, axis=1, keepdims=True)  # (B, K)
    x = images
    for axis, size in ((1, height), (2, width)):
        padding = [[0, 0]] * 4
        padding[axis] = [radius, radius]
        padded = tf.pad(x, padding, mode="REFLECT")
        x = tf.add_n([
            weights[:, k, None, None, None] * (padded[:, k : k + size] if axis == 1 else padded[:, :, k : k + size])
            for k in range(2 * radius + 1)
        ])
    return tf.where(_uniform([batch, 1, 1, 1], apply_seed, 0.0, 1.0) < probability, x, images)


def simclr_augment(images, seed, *, crop_scale=(0.08, 1.0), flip=True, jitter=0.5, jitter_probability=0.8,
                   grayscale_probability=0.2, blur_probability=0.0, blur_sigma=(0.1, 2.0), noise=0.0):
    """One random SimCLR view of each image of a batch ``[B, H, W, C]`` in 0..255.

    Random resized crop, horizontal flip, colour jitter (brightness and
    contrast for grayscale; also saturation, hue and random grayscale for
    RGB), optionally Gaussian blur and Gaussian pixel noise. Vectorised and
    stateless: the same ``seed`` (shape ``[2]``) gives the same views.
    Returns the batch in its own dtype (integers rounded), in 0..255.

    Args:
        crop_scale: range of the crop's share of the image area; ``(1, 1)``
            with the default ratio range still crops (aspect ratio changes).
        flip: random horizontal flips.
        jitter: colour jitter strength ``s`` of the paper (0.5 for CIFAR, 1.0
            for ImageNet); 0 disables it.
        jitter_probability, grayscale_probability: chances of colour jitter
            and of turning an RGB view gray.
        blur_probability, blur_sigma: chance of a Gaussian blur and its sigma
            range in pixels (the paper blurs ImageNet, not CIFAR).
        noise: standard deviation of added Gaussian noise, in pixel values.
    """
    crop_seed, flip_seed, jitter_seed, blur_seed, noise_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, num=5)
    )
    x = random_resized_crop(images, crop_seed, scale=crop_scale)
    if flip:
        x = random_flip_left_right(x, flip_seed)
    if jitter:
        x = color_jitter(x, jitter_seed, strength=jitter, probability=jitter_probability,
                         grayscale_probability=grayscale_probability)
    if blur_probability:
        x = gaussian_blur(x, blur_seed, sigma=blur_sigma, probability=blur_probability)
    if noise:
        x += tf.random.stateless_normal(tf.shape(x), seed=noise_seed, stddev=noise)
    x = tf.clip_by_value(x, 0.0, 255.0)
    return tf.cast(tf.round(x), images.dtype) if images.dtype.is_integer else tf.cast(x, images.dtype)


def simclr_views(images, seed, **augmentation):
    """Two independent views ``(view1, view2)`` of a batch: ``simclr_augment`` under two seeds split from ``seed``."""
    first, second = tf.unstack(tf.random.experimental.stateless_split(seed, num=2))
    return simclr_augment(images, first, **augmentation), simclr_augment(images, second, **augmentation)
