"""Small, learnable data and models shared by the tests."""

import numpy as np

import kvision


def quadrant_images(n, *, size=16, channels=1, num_classes=4, seed=0):
    """``n`` noisy uint8 images whose class is the bright quadrant (0..3), and their labels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, n)
    images = rng.integers(0, 60, (n, size, size, channels))
    half = size // 2
    for i, label in enumerate(labels):
        row, col = divmod(int(label) % 4, 2)
        images[i, row * half : (row + 1) * half, col * half : (col + 1) * half] += 150
    return images.astype(np.uint8), labels.astype(np.int64)


def small_cnn(input_shape=(16, 16, 1), num_classes=4, **options):
    """A two-block CNN: fast enough for several training runs per test."""
    options = {"filters": (8, 16), "convs_per_block": 1, "dense_units": 32, **options}
    return kvision.models.build("cnn", input_shape, num_classes, **options)



def quadrant_examples(count, size, channels, num_classes, seed):
    """``quadrant_images`` in the signature the format writers of tests/data/writers.py take."""
    return quadrant_images(count, size=size, channels=channels, seed=seed)
