"""The VGG-style CNN: its shape, its options and its errors."""

import keras
import pytest

from kvision.errors import ModelError
from kvision.models import build, build_cnn
from tests.models.helpers import trainable_params


def test_default_cnn_is_three_vgg_blocks_and_a_dense_head():
    model = build("cnn", (28, 28, 1), 10)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [conv.filters for conv in convs] == [32, 32, 64, 64, 128, 128]
    assert all(not conv.use_bias for conv in convs)  # BN follows every conv
    # 28 → 14 → 7 → 3 through the three max-pools, flattened into the dense head.
    assert model.get_layer("head_pool").output.shape == (None, 3 * 3 * 128)
    assert model.get_layer("head_dense").units == 256
    assert model.get_layer("block1_dropout").rate == 0.25
    assert model.get_layer("head_dropout").rate == 0.5


def test_cnn_without_batch_norm_gives_its_convs_a_bias():
    model = build_cnn((28, 28, 1), 10, filters=(8, 16), batch_norm=False, dropout=0.0)
    kinds = {type(layer).__name__ for layer in model.layers if layer.name.startswith("block")}
    assert kinds == {"Conv2D", "ReLU", "MaxPooling2D"}  # no BatchNormalization, no Dropout
    assert all(layer.use_bias for layer in model.layers if isinstance(layer, keras.layers.Conv2D))


def test_average_pooling_head_does_not_grow_with_the_input():
    small = build("cnn", (32, 32, 3), 10, pooling="avg")
    large = build("cnn", (96, 96, 3), 10, pooling="avg")
    assert trainable_params(small) == trainable_params(large)
    assert small.get_layer("head_pool").output.shape == (None, 128)


def test_input_must_survive_every_pooling_stage():
    expected = r"5 pooling stages needs inputs of at least 32×32 pixels\. Received: input_shape=\(28, 28"
    with pytest.raises(ModelError, match=expected):
        build("cnn", (28, 28, 1), 10, filters=(8, 8, 8, 8, 8))


@pytest.mark.parametrize(
    "options, received",
    [
        ({"filters": ()}, r"filters=\(\)"),
        ({"convs_per_block": 0}, "convs_per_block=0"),
        ({"dense_units": -1}, "dense_units=-1"),
        ({"dropout": 1.0}, "dropout=1.0"),
        ({"dense_dropout": "0.5"}, "dense_dropout='0.5'"),
        ({"pooling": "max"}, "pooling='max'"),
    ],
)
def test_invalid_options_are_rejected(options, received):
    with pytest.raises(ModelError, match=f"Received: {received}"):
        build("cnn", (28, 28, 1), 10, **options)
