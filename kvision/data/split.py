"""Hold out a validation set from a training split, reproducibly."""

import numbers

import numpy as np

from kvision.errors import DataError


def _validation_count(size, total):
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        if 0 <= size < total or size == total == 0:
            return int(size)
    elif isinstance(size, numbers.Real) and 0.0 <= size < 1.0:
        return round(float(size) * total)
    raise DataError(
        f"Expected size to be a count in [0, {total}) or a fraction in [0, 1). Received: size={size!r}"
    )


def train_validation_split(images, labels, size, seed=0):
    """Split ``(images, labels)`` into training and validation parts.

    The same ``seed`` always picks the same examples; each part keeps the
    original order of its examples.

    Args:
        images: array ``(N, H, W, C)``.
        labels: array ``(N,)``.
        size: validation size, an int count or a float fraction of ``N``;
            ``0`` gives empty validation arrays.
        seed: seed of the random choice.

    Returns:
        ``((x_train, y_train), (x_val, y_val))``.
    """
    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim == 0 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(
            f"Expected images (N, ...) and labels (N,) of the same length N. "
            f"Received: images of shape {images.shape}, labels of shape {labels.shape}"
        )
    count = _validation_count(size, len(images))
    order = np.random.default_rng(seed).permutation(len(images))
    val_index, train_index = np.sort(order[:count]), np.sort(order[count:])
    return (images[train_index], labels[train_index]), (images[val_index], labels[val_index])
