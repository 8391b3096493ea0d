"""The preprocessing every image classifier starts with.

Models take raw float32 pixels (0..255) and scale them themselves, so an exported
model needs nothing outside itself to serve.
"""

import numpy as np
from keras import layers

from kvision.errors import ModelError


def preprocess(inputs, mean=None, std=None, name="preprocess"):
    """Scale raw 0..255 images: ``(x - mean) / std`` per channel, or ``x / 255``.

    Args:
        inputs: image tensor ``(batch, height, width, channels)`` in 0..255.
        mean: per-channel mean on the raw 0..255 scale (one value per channel),
            as computed from the training split; ``None`` to rescale to 0..1.
        std: per-channel standard deviation on the same scale; given with ``mean``.
        name: name of the layer.
    """
    if mean is None and std is None:
        return layers.Rescaling(1.0 / 255, name=name)(inputs)
    if mean is None or std is None:
        raise ModelError(
            f"Per-channel standardisation needs both mean and std, or neither. "
            f"Received: mean={mean!r}, std={std!r}"
        )
    channels = inputs.shape[-1]
    mean = np.asarray(mean, dtype="float32")
    std = np.asarray(std, dtype="float32")
    for label, values in (("mean", mean), ("std", std)):
        if values.shape != (channels,):
            raise ModelError(
                f"{label} needs one value per input channel ({channels}). "
                f"Received: {label}={values.tolist()}"
            )
    if not np.all(np.isfinite(mean)) or not np.all((std > 0) & np.isfinite(std)):
        raise ModelError(
            f"mean must be finite and std finite and positive. "
            f"Received: mean={mean.tolist()}, std={std.tolist()}"
        )
    return layers.Normalization(
        mean=mean.tolist(), variance=np.square(std).tolist(), name=name
    )(inputs)
