"""Encoded images (JPEG, PNG, BMP, GIF bytes) to model inputs, inside a TensorFlow graph.

Used by exported signatures and by decoders that take image bytes, so a
client sends files as they are and the graph does the rest.
"""

import tensorflow as tf


def _to_channels(image, channels):
    """A decoded uint8 ``[h, w, 1..4]`` image as ``channels`` (1 or 3) channels, alpha dropped."""
    has_color = tf.shape(image)[-1] >= 3
    if channels == 3:
        return tf.cond(has_color, lambda: image[..., :3], lambda: tf.image.grayscale_to_rgb(image[..., :1]))
    return tf.cond(has_color, lambda: tf.image.rgb_to_grayscale(image[..., :3]), lambda: image[..., :1])


def decode_images(image_bytes, image_shape):
    """Encoded images (string ``[N]``) as float32 ``[N, H, W, C]`` in 0..255.

    Images already at ``H×W`` are passed through untouched, so a lossless
    encoding of a training image reaches the model bit-exact; others are
    resized with antialiasing. An undecodable input fails with
    ``InvalidArgumentError: Unknown image file format``.
    """
    height, width, channels = image_shape

    def decode_one(encoded):
        image = tf.io.decode_image(encoded, channels=0, expand_animations=False)
        image = tf.cast(_to_channels(image, channels), tf.float32)
        same_size = tf.reduce_all(tf.shape(image)[:2] == (height, width))
        image = tf.cond(
            same_size,
            lambda: image,
            lambda: tf.image.resize(image, (height, width), antialias=True),
        )
        return tf.ensure_shape(image, image_shape)

    return tf.map_fn(decode_one, image_bytes, fn_output_signature=tf.TensorSpec(image_shape, tf.float32))
