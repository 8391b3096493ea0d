"""Resizing uint8 images, for folders of mixed sizes and for ``load_dataset(image_size=...)``."""

import numpy as np
import tensorflow as tf

from kvision.errors import DataError

_CHUNK = 1024  # images resized per call, so a float32 copy of the whole set never exists


def _is_positive_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value > 0


def parse_image_size(image_size):
    """``image_size`` as ``(height, width)``: an int means a square, a pair is taken as is."""
    size = (image_size, image_size) if isinstance(image_size, (int, np.integer)) else image_size
    if not (isinstance(size, (tuple, list)) and len(size) == 2 and all(map(_is_positive_int, size))):
        raise DataError(
            f"Expected image_size to be a positive int or a (height, width) pair of positive ints. "
            f"Received: image_size={image_size!r}"
        )
    return int(size[0]), int(size[1])


def resize_uint8(images, size):
    """Resize one ``(H, W, C)`` image or a batch ``(N, H, W, C)`` of uint8 images to ``size``.

    Bilinear with antialiasing (so shrinking does not alias), rounded back to
    uint8. Batches are processed in chunks of ``_CHUNK`` images.
    """
    if tuple(images.shape[-3:-1]) == tuple(size):
        return images
    if images.ndim == 3:
        return resize_uint8(images[None], size)[0]
    out = np.empty((len(images), *size, images.shape[-1]), dtype=np.uint8)
    for start in range(0, len(images), _CHUNK):
        chunk = tf.image.resize(images[start : start + _CHUNK], size, antialias=True)
        out[start : start + _CHUNK] = tf.cast(tf.clip_by_value(tf.round(chunk), 0, 255), tf.uint8).numpy()
    return out
