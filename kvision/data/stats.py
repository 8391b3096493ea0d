"""Per-channel statistics of a uint8 image set, for Normalization layers."""

import numpy as np

from kvision.errors import DataError

_CHUNK_VALUES = 1 << 22  # values converted to float per step (16 MiB of float32)


def channel_stats(images):
    """Per-channel mean and standard deviation of ``images`` in the raw 0..255 scale.

    Sums are accumulated in float64 over chunks of images, so memory stays
    small (no float copy of the whole set) and the result does not drift.

    Args:
        images: array ``(N, H, W, C)``, usually uint8.

    Returns:
        ``(mean, std)``, float32 arrays of shape ``(C,)``; ``std`` is the
        population standard deviation, as ``keras.layers.Normalization`` uses.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.size == 0:
        raise DataError(
            f"Expected a non-empty image array of shape (N, H, W, C). Received: shape {images.shape}"
        )
    step = max(1, _CHUNK_VALUES // int(np.prod(images.shape[1:])))
    return batch_channel_stats(images[start : start + step] for start in range(0, len(images), step))


def batch_channel_stats(batches):
    """``channel_stats`` of the images of ``batches`` (arrays ``(B, H, W, C)``), one batch in memory at a time."""
    total = total_sq = 0.0
    count = 0
    for batch in batches:
        chunk = np.asarray(batch, np.float32)
        total = total + chunk.sum(axis=(0, 1, 2), dtype=np.float64)
        total_sq = total_sq + np.square(chunk).sum(axis=(0, 1, 2), dtype=np.float64)
        count += chunk.size // chunk.shape[-1]
    if not count:
        raise DataError("Expected at least one image to compute channel statistics from. Received: none")
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    return mean.astype(np.float32), std.astype(np.float32)
