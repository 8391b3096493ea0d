"""Crop windows and resizing of single uint8 images, shared by the streamed pipelines and the exported signatures.

Two crop modes (``CROPS``) say how a model sees its images:

- ``"pad"`` (small images, CIFAR-style): evaluation resizes the whole image
  to the model's size; training pads and crops a random window of the batch
  (``kvision.data.augment``).
- ``"inception"`` (large images, the ImageNet convention of Szegedy et al.
  2015, https://arxiv.org/abs/1409.4842): training takes a random window of
  ``scale`` of the image's area and an aspect ratio in 3/4..4/3
  (``random_window``), evaluation the central window holding 87.5 % of the
  shorter side (``center_window``, i.e. resize the shorter side to
  size/0.875 and centre-crop); either window is then resized to the model's
  size (``resize_window``, ``resize_to``). An image already at the model's
  size is taken as preprocessed and passes through whole, so a client that
  crops for itself and the serving signatures agree.

A window is ``int32 [4]``: ``(top, left, height, width)``, computed from the
image's dimensions alone so a JPEG decodes only the window
(``tf.image.decode_and_crop_jpeg``).
"""

import tensorflow as tf

CROPS = ("pad", "inception")
# What the exported serving signatures do to an image of another size, per crop mode (evaluation.json records it).
EVAL_CROPS = {"pad": "resize", "inception": "center"}
CENTRAL_FRACTION = 0.875
ASPECT_RATIO = (3 / 4, 4 / 3)


def center_window(height, width, size):
    """The central window of an ``height × width`` image whose shorter side (relative to ``size``) keeps 87.5 %.

    The whole image when it is already ``size``.
    """
    height, width = tf.cast(height, tf.float64), tf.cast(width, tf.float64)
    target = tf.constant(size, tf.float64)
    fraction = CENTRAL_FRACTION * tf.minimum(height / target[0], width / target[1])
    crop = tf.clip_by_value(tf.round(target * fraction), 1, tf.stack([height, width]))
    crop = tf.where(tf.reduce_all(tf.stack([height, width]) == target), target, crop)
    offset = tf.floor((tf.stack([height, width]) - crop) / 2)
    return tf.cast(tf.concat([offset, crop], 0), tf.int32)


def random_window(height, width, seed, scale=(0.08, 1.0)):
    """A random window of ``scale[0]..scale[1]`` of the image's area with an aspect ratio in 3/4..4/3.

    ``seed`` (int ``[2]``) decides it (``stateless_sample_distorted_bounding_box``,
    at most 10 attempts, else the whole image).
    """
    begin, extent, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.cast(tf.stack([height, width, 1]), tf.int32),
        bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
        seed=seed,
        min_object_covered=0.0,
        aspect_ratio_range=ASPECT_RATIO,
        area_range=scale,
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    return tf.concat([begin[:2], extent[:2]], 0)


def _to_uint8(image):
    return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)


def resize_to(image, size):
    """A uint8 ``[h, w, c]`` image at ``size`` (antialiased, rounded back to uint8); untouched when already there."""
    same = tf.reduce_all(tf.shape(image)[:2] == size)
    return tf.cond(same, lambda: image, lambda: _to_uint8(tf.image.resize(image, size, antialias=True)))


def resize_window(image, size):
    """A random training window (uint8 ``[h, w, c]``) at ``size``: bilinear, antialiased only from a 2× downscale.

    Below 2× in both sides bilinear's two taps per side still reach every
    source pixel, so aliasing stays mild, and it costs less than half of
    the antialiased resize (whose kernel widens with the scale), the largest
    cost of a training crop after decoding. TF Model Garden's ImageNet input
    resizes the random crop with plain bilinear at every scale; torchvision's
    RandomResizedCrop antialiases (PIL always, tensors by default in v2).
    From 2× on, where bilinear skips pixels and aliases, this antialiases as
    torchvision does: for 500×375 photos at 224 about 2 % of the windows,
    for 800×600 photos half. Evaluation and the exported signatures keep
    ``resize_to``: what a model is evaluated and served on does not change.
    """
    large = tf.reduce_any(tf.shape(image)[:2] >= 2 * tf.constant(size))
    return tf.cond(
        large,
        lambda: _to_uint8(tf.image.resize(image, size, antialias=True)),
        lambda: _to_uint8(tf.image.resize(image, size)),
    )
