"""The VGG-style CNN and the fast variant: their shapes, options and errors; test-time flip averaging."""

import keras
import numpy as np
import pytest

import kvision
from kvision.errors import ModelError
from kvision.models import build, build_cnn
from kvision.models.common import flip_averaged
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


def test_cnn_fast_pools_after_the_first_conv_of_each_block_and_has_no_dense_head():
    model = build("cnn_fast", (28, 28, 1), 10)
    assert model.name == "cnn_fast"
    kinds = [type(layer).__name__ for layer in model.layers[2:]]  # after the input and the standardisation
    block = ["Conv2D", "MaxPooling2D", "FusedBatchNormalization", "ReLU", "Conv2D", "FusedBatchNormalization", "ReLU"]
    assert kinds == ["Conv2D", "FusedBatchNormalization", "ReLU", *block * 3, "GlobalMaxPooling2D", "Dense"]
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [conv.filters for conv in convs] == [16, 24, 24, 48, 48, 96, 96]
    # The stem and block 1's first conv at 28×28; the rest at 14, 7 and 3 pixels.
    assert [conv.output.shape[1] for conv in convs] == [28, 28, 14, 14, 7, 7, 3]
    assert model.get_layer("head_pool").output.shape == (None, 96)
    assert trainable_params(model) == 166_682 - 2 * sum(conv.filters for conv in convs)  # BN means/variances
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in model.layers)


def test_flip_averaging_is_the_mean_of_both_passes_and_survives_saving(tmp_path):
    model = build("cnn_fast", (12, 12, 1), 3)
    images = np.random.default_rng(0).uniform(0, 255, (5, 12, 12, 1)).astype("float32")
    tta = flip_averaged(model)
    assert tta.input.name == "image" and tta.get_layer("logits").output.shape == (None, 3)
    plain, mirrored = model(images).numpy(), model(images[:, :, ::-1]).numpy()
    assert np.abs(plain - mirrored).max() > 1e-3
    np.testing.assert_allclose(tta(images).numpy(), (plain + mirrored) / 2, rtol=1e-5, atol=1e-6)
    tta.save(tmp_path / "tta.keras")
    loaded = kvision.load_model(tmp_path / "tta.keras")
    np.testing.assert_allclose(loaded(images).numpy(), tta(images).numpy(), rtol=1e-6)
    assert loaded.count_params() == model.count_params(), "the weights are shared, not copied"


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
        ({"pooling": "min"}, "pooling='min'"),
        ({"stem": -8}, "stem=-8"),
        ({"pool_position": "middle"}, "pool_position='middle'"),
    ],
)
def test_invalid_options_are_rejected(options, received):
    with pytest.raises(ModelError, match=f"Received: {received}"):
        build("cnn", (28, 28, 1), 10, **options)
