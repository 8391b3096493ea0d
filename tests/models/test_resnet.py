"""ResNets: parameter counts against the papers, shortcut and padding behaviour, errors."""

import keras
import numpy as np
import pytest

from kvision.errors import ModelError
from kvision.layers import conv2d
from kvision.models import build, build_cifar_resnet
from kvision.models.resnet import shortcut_branch
from tests.models.helpers import images, trainable_params

# He et al. 2016, Table 6 (option A shortcuts): 0.27M, 0.46M, 0.66M, 0.85M, 1.7M.
CIFAR_PARAMS = [
    ("resnet20", 0.27e6, 0.01e6),
    ("resnet32", 0.46e6, 0.01e6),
    ("resnet44", 0.66e6, 0.01e6),
    ("resnet56", 0.85e6, 0.01e6),
    ("resnet110", 1.7e6, 0.05e6),
]


@pytest.mark.parametrize("version", ["", "v2"])
@pytest.mark.parametrize("name, expected, tolerance", CIFAR_PARAMS)
def test_cifar_resnet_parameter_counts_match_the_paper(name, expected, tolerance, version):
    model = build(name + version, (32, 32, 3), 10)
    assert abs(trainable_params(model) - expected) <= tolerance


def test_wide_resnet20_2_is_resnet20_at_twice_the_width():
    narrow, wide = build("resnet20", (28, 28, 1), 10), build("wide_resnet20_2", (28, 28, 1), 10)
    assert wide.name == "wide_resnet20_2"
    assert [wide.get_layer(f"stage{s}_block1_2_conv").filters for s in (1, 2, 3)] == [32, 64, 128]
    # Every 3×3 kernel has 4× the weights; the stem's (1 input channel) and the logits' 2×.
    assert 3.9 * trainable_params(narrow) < trainable_params(wide) < 4 * trainable_params(narrow)


# torchvision's resnet18/34/50: 11 689 512, 21 797 672, 25 557 032 parameters.
@pytest.mark.parametrize(
    "name, expected", [("resnet18", 11.69e6), ("resnet34", 21.80e6), ("resnet50", 25.56e6)]
)
def test_imagenet_resnet_parameter_counts_match_the_standard_ones(name, expected):
    model = build(name, (224, 224, 3), 1000)
    assert abs(trainable_params(model) - expected) <= 0.005 * expected
    # 224 → 56 after the stem, 7 before the pooling, as in the paper's Table 1.
    assert model.get_layer("stage1_block1_add").output.shape[1:3] == (56, 56)
    assert model.get_layer("avg_pool").input.shape[1:3] == (7, 7)


def test_projection_shortcuts_add_two_1x1_conv_bn():
    identity = build("resnet20", (32, 32, 3), 10)
    projection = build("resnet20", (32, 32, 3), 10, shortcut="projection")
    # 16→32 and 32→64: a 1×1 kernel plus BN gamma and beta each.
    extra = (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)
    assert trainable_params(projection) - trainable_params(identity) == extra


@pytest.mark.parametrize("size", [7, 8])
def test_identity_shortcut_subsamples_and_zero_pads_channels(size):
    inputs = keras.Input((size, size, 4))
    model = keras.Model(inputs, shortcut_branch(inputs, 8, 2, "block", kind="identity"))
    x = images((size, size, 4))
    kept = x[:, ::2, ::2]
    expected = np.concatenate([kept, np.zeros_like(kept)], axis=-1)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model(x)), expected)


@pytest.mark.parametrize("kernel_size, size", [(3, 8), (3, 7), (7, 8)])
def test_strided_conv_is_centred_on_the_pixels_the_shortcut_keeps(kernel_size, size):
    inputs = keras.Input((size, size, 1))
    model = keras.Model(inputs, conv2d(inputs, 1, kernel_size, "conv", strides=2))
    centre = np.zeros((kernel_size, kernel_size, 1, 1), "float32")
    centre[kernel_size // 2, kernel_size // 2] = 1.0
    model.get_layer("conv").set_weights([centre])
    x = images((size, size, 1))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x)), x[:, ::2, ::2], rtol=1e-6)


def test_v2_is_pre_activation_throughout():
    model = build("resnet20v2", (32, 32, 3), 10)
    names = [layer.name for layer in model.layers]
    assert "stem_bn" not in names and "stage1_block1_out" not in names
    assert names.index("post_relu") < names.index("avg_pool")
    # The stride-2 block's shortcut starts from the pre-activated input.
    subsample = model.get_layer("stage2_block1_0_subsample")
    assert subsample.input is model.get_layer("stage2_block1_preact_relu").output


def test_cifar_resnet_takes_odd_sizes():
    model = build("resnet20", (28, 28, 1), 10)
    assert model.get_layer("avg_pool").input.shape[1:] == (7, 7, 64)


@pytest.mark.parametrize("depth", [21, 2, 0, "20"])
def test_depth_must_be_6n_plus_2(depth):
    with pytest.raises(ModelError, match=r"6n\+2 .*e\.g\. 20, 32, 44, 56 or 110") as error:
        build_cifar_resnet((32, 32, 3), 10, depth=depth)
    assert str(error.value).endswith(f"Received: depth={depth!r}")


@pytest.mark.parametrize(
    "name, input_shape, message",
    [
        ("resnet20", (4, 4, 3), r"ResNet-20 \(CIFAR\) needs inputs of at least 8×8 pixels\. "
                                r"Received: input_shape=\(4, 4, 3\)"),
        ("resnet18", (28, 28, 1), r"ResNet-18 needs inputs of at least 32×32 pixels\. "
                                  r"Received: input_shape=\(28, 28, 1\)"),
        ("resnet50", (224, 16, 3), r"ResNet-50 needs inputs of at least 32×32"),
    ],
)
def test_too_small_inputs_are_rejected(name, input_shape, message):
    with pytest.raises(ModelError, match=message):
        build(name, input_shape, 10)


@pytest.mark.parametrize(
    "name, options, received",
    [
        ("resnet20", {"version": 3}, "version=3"),
        ("resnet20", {"shortcut": "conv"}, "shortcut='conv'"),
        ("resnet20", {"width": 0}, "width=0"),
        ("resnet18", {"block": "wide"}, "block='wide'"),
        ("resnet18", {"stage_blocks": (2, 2, 2)}, r"stage_blocks=\(2, 2, 2\)"),
    ],
)
def test_unknown_options_are_rejected(name, options, received):
    with pytest.raises(ModelError, match=f"Received: {received}"):
        build(name, (32, 32, 3), 10, **options)
