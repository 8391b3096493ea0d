"""Models own their preprocessing: raw 0..255 pixels in, scaled inside the model."""

import keras
import numpy as np
import pytest

from kvision.errors import ModelError
from kvision.models import build
from tests.models.helpers import assert_survives_save_and_config, images

MEAN = [125.3, 123.0, 113.9]
STD = [63.0, 62.1, 66.7]


def preprocessed(model, x):
    """Output of the model's first layer after the input."""
    head = keras.Model(model.input, model.get_layer("preprocess").output)
    return keras.ops.convert_to_numpy(head(x))


@pytest.mark.parametrize("name", ["cnn", "resnet20", "resnet18"])
def test_mean_and_std_standardise_each_channel(name):
    model = build(name, (32, 32, 3), 10, mean=MEAN, std=STD)
    x = images((32, 32, 3))
    expected = (x - np.array(MEAN)) / np.array(STD)
    np.testing.assert_allclose(preprocessed(model, x), expected, rtol=1e-5, atol=1e-5)


def test_without_statistics_pixels_are_scaled_to_unit_range():
    model = build("cnn", (28, 28, 1), 10)
    x = images((28, 28, 1))
    np.testing.assert_allclose(preprocessed(model, x), x / 255.0, rtol=1e-6)


def test_statistics_travel_with_the_saved_model(tmp_path):
    model = build("resnet20", (32, 32, 3), 10, mean=MEAN, std=STD)
    assert_survives_save_and_config(model, images((32, 32, 3)), tmp_path / "model.keras")


@pytest.mark.parametrize(
    "mean, std, message",
    [
        (MEAN, STD, r"one value per input channel \(1\)\. Received: mean=\[125\.3"),
        ([120.0], [60.0, 60.0], r"one value per input channel \(1\)\. Received: std=\[60\.0, 60"),
        ([120.0], None, "both mean and std, or neither"),
        ([120.0], [0.0], "std finite and positive"),
    ],
)
def test_bad_statistics_are_rejected(mean, std, message):
    with pytest.raises(ModelError, match=message):
        build("cnn", (28, 28, 1), 10, mean=mean, std=std)
