"""Under a mixed_float16 policy the logits stay float32 (for a stable softmax/loss)."""

import keras
import numpy as np
import pytest

from kvision.models import build
from tests.models.helpers import images


@pytest.mark.parametrize("name", ["cnn", "resnet20", "resnet20v2", "resnet18"])
def test_logits_are_float32_under_mixed_float16(name):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = build(name, (32, 32, 3), 10, mean=[120.0] * 3, std=[60.0] * 3)
        convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
        assert all(conv.compute_dtype == "float16" for conv in convs)
        logits = keras.ops.convert_to_numpy(model(images((32, 32, 3)), training=False))
    finally:
        keras.config.set_dtype_policy(previous)
    assert model.output.dtype == "float32"
    assert logits.dtype == np.float32
    assert np.all(np.isfinite(logits))
