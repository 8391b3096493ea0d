"""Residual networks: the CIFAR family (ResNet-20 … 110) and the ImageNet one (ResNet-18/34/50).

He et al. 2016, "Deep Residual Learning for Image Recognition",
https://arxiv.org/abs/1512.03385 (v1), and "Identity Mappings in Deep Residual
Networks", https://arxiv.org/abs/1603.05027 (v2, pre-activation).
"""

import keras
from keras import layers

from kvision.layers import bn_relu, conv2d, conv_bn_relu
from kvision.models.common import classifier_input, classifier_logits, is_positive_int, require
from kvision.models.registry import register_model

SHORTCUTS = ("identity", "projection")
CIFAR_DEPTHS = (20, 32, 44, 56, 110)
IMAGENET_RESNETS = {
    "resnet18": dict(block="basic", stage_blocks=(2, 2, 2, 2)),
    "resnet34": dict(block="basic", stage_blocks=(3, 4, 6, 3)),
    "resnet50": dict(block="bottleneck", stage_blocks=(3, 4, 6, 3)),
}


def shortcut_branch(x, filters, stride, name, kind="projection"):
    """The residual's skip branch: ``x``, or ``x`` brought to ``filters`` channels and ``stride``.

    ``kind="projection"`` is the paper's option B, a strided 1×1 conv + BN
    (``{name}_0_conv``, ``{name}_0_bn``). ``kind="identity"`` is option A, used for
    CIFAR and free of parameters: keep every ``stride``-th pixel (a 1×1 max-pool,
    ``{name}_0_subsample``) and append zero channels (the input scaled by 0,
    ``{name}_0_zeros``, concatenated in ``{name}_0_pad``); ``filters`` must then be a
    multiple of the input channels.
    """
    channels = x.shape[-1]
    if stride == 1 and channels == filters:
        return x
    if kind == "projection":
        return conv_bn_relu(x, filters, 1, f"{name}_0", strides=stride, relu=False)
    require(
        filters % channels == 0,
        f"A zero-padded identity shortcut needs filters to be a multiple of the input "
        f"channels ({channels}).",
        filters=filters,
    )
    if stride > 1:
        x = layers.MaxPooling2D(1, strides=stride, name=f"{name}_0_subsample")(x)
    if filters == channels:
        return x
    zeros = layers.Rescaling(0.0, name=f"{name}_0_zeros")(x)
    return layers.Concatenate(name=f"{name}_0_pad")([x] + [zeros] * (filters // channels - 1))


def basic_block(x, filters, stride, name, *, shortcut="projection"):
    """Two 3×3 conv-BN, the first strided, added to the shortcut, then ReLU (v1)."""
    residual = conv_bn_relu(x, filters, 3, f"{name}_1", strides=stride)
    residual = conv_bn_relu(residual, filters, 3, f"{name}_2", relu=False)
    skip = shortcut_branch(x, filters, stride, name, shortcut)
    x = layers.Add(name=f"{name}_add")([skip, residual])
    return layers.ReLU(name=f"{name}_out")(x)


def bottleneck_block(x, filters, stride, name):
    """1×1 reduce to ``filters``, strided 3×3, 1×1 expand to ``4 * filters``, add, ReLU.

    The stride sits on the 3×3 convolution, as in torchvision ("ResNet v1.5"); the
    parameter count is the paper's.
    """
    residual = conv_bn_relu(x, filters, 1, f"{name}_1")
    residual = conv_bn_relu(residual, filters, 3, f"{name}_2", strides=stride)
    residual = conv_bn_relu(residual, 4 * filters, 1, f"{name}_3", relu=False)
    skip = shortcut_branch(x, 4 * filters, stride, name)
    x = layers.Add(name=f"{name}_add")([skip, residual])
    return layers.ReLU(name=f"{name}_out")(x)


def preact_basic_block(x, filters, stride, name, *, shortcut="projection"):
    """Pre-activation basic block (v2): BN-ReLU, 3×3 conv, BN-ReLU, 3×3 conv, add the shortcut.

    A block that changes the shape feeds its shortcut from the pre-activated input
    as well; every other block keeps the clean identity path.
    """
    preact = bn_relu(x, f"{name}_preact")
    changes_shape = stride > 1 or x.shape[-1] != filters
    skip = shortcut_branch(preact if changes_shape else x, filters, stride, name, shortcut)
    residual = conv2d(preact, filters, 3, f"{name}_1_conv", strides=stride)
    residual = bn_relu(residual, f"{name}_1")
    residual = conv2d(residual, filters, 3, f"{name}_2_conv")
    return layers.Add(name=f"{name}_add")([skip, residual])


BLOCKS = {"basic": basic_block, "bottleneck": bottleneck_block}


def build_cifar_resnet(
    input_shape,
    num_classes,
    *,
    depth=20,
    version=1,
    shortcut="identity",
    width=16,
    mean=None,
    std=None,
    name=None,
):
    """Build a CIFAR ResNet (https://arxiv.org/abs/1512.03385 §4.2).

    A 3×3 stem, three stages of ``n = (depth - 2) / 6`` basic blocks at ``width``,
    ``2 * width`` and ``4 * width`` filters (the last two starting with stride 2),
    global average pooling and the logits.

    Args:
        input_shape: ``(height, width, channels)``, at least 8×8.
        num_classes: number of output logits.
        depth: ``6n + 2`` layers: 20, 32, 44, 56, 110, …
        version: 1 (post-activation, https://arxiv.org/abs/1512.03385) or 2
            (pre-activation, https://arxiv.org/abs/1603.05027).
        shortcut: ``"identity"`` (option A, the paper's choice for CIFAR: subsample and
            zero-pad channels, no parameters) or ``"projection"`` (option B, 1×1 conv + BN).
        width: filters of the first stage.
        mean, std: per-channel statistics of the raw training images, see
            :func:`kvision.layers.preprocess`.
        name: model name; ``resnet{depth}`` (``v2`` appended for version 2) by default.
    """
    require(
        is_positive_int(depth) and depth >= 8 and (depth - 2) % 6 == 0,
        "A CIFAR ResNet has depth 6n+2 (three stages of n basic blocks, n >= 1), "
        "e.g. 20, 32, 44, 56 or 110.",
        depth=depth,
    )
    require(version in (1, 2), "version must be 1 (post-) or 2 (pre-activation).", version=version)
    require(shortcut in SHORTCUTS, "shortcut must be identity or projection.", shortcut=shortcut)
    require(is_positive_int(width), "width must be a positive integer.", width=width)

    inputs, x = classifier_input(
        input_shape, num_classes, min_size=8, model=f"ResNet-{depth} (CIFAR)", mean=mean, std=std
    )
    if version == 1:
        x = conv_bn_relu(x, width, 3, "stem")
    else:
        x = conv2d(x, width, 3, "stem_conv")
    block = basic_block if version == 1 else preact_basic_block
    for stage in range(3):
        for b in range((depth - 2) // 6):
            stride = 2 if stage > 0 and b == 0 else 1
            block_name = f"stage{stage + 1}_block{b + 1}"
            x = block(x, width * 2**stage, stride, block_name, shortcut=shortcut)
    if version == 2:
        x = bn_relu(x, "post")
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    default_name = f"resnet{depth}" + ("v2" if version == 2 else "")
    return keras.Model(inputs, classifier_logits(x, num_classes), name=name or default_name)


def build_resnet(
    input_shape,
    num_classes,
    *,
    block="basic",
    stage_blocks=(2, 2, 2, 2),
    mean=None,
    std=None,
    name=None,
):
    """Build an ImageNet-style ResNet (https://arxiv.org/abs/1512.03385, Table 1).

    A 7×7/2 conv and 3×3/2 max-pool stem, four stages at 64/128/256/512 filters
    (×4 out of bottleneck blocks; the last three start with stride 2, projection
    shortcuts wherever the shape changes), global average pooling and the logits.

    Args:
        input_shape: ``(height, width, channels)``, at least 32×32; grayscale or RGB.
        num_classes: number of output logits.
        block: ``"basic"`` (two 3×3 convs) or ``"bottleneck"`` (1×1, 3×3, 1×1).
        stage_blocks: number of blocks in each of the four stages.
        mean, std: per-channel statistics of the raw training images, see
            :func:`kvision.layers.preprocess`.
        name: model name; ``resnet{depth}`` by default.
    """
    require(block in BLOCKS, f"block must be one of {', '.join(BLOCKS)}.", block=block)
    require(
        isinstance(stage_blocks, (tuple, list))
        and len(stage_blocks) == 4
        and all(map(is_positive_int, stage_blocks)),
        "stage_blocks must be four positive integers, the blocks of each stage.",
        stage_blocks=stage_blocks,
    )
    depth = (2 if block == "basic" else 3) * sum(stage_blocks) + 2
    inputs, x = classifier_input(
        input_shape, num_classes, min_size=32, model=f"ResNet-{depth}", mean=mean, std=std
    )
    x = conv_bn_relu(x, 64, 7, "stem", strides=2)
    x = layers.ZeroPadding2D(1, name="stem_pool_pad")(x)  # zeros never win a max after ReLU
    x = layers.MaxPooling2D(3, strides=2, name="stem_pool")(x)
    for stage, count in enumerate(stage_blocks):
        for b in range(count):
            stride = 2 if stage > 0 and b == 0 else 1
            x = BLOCKS[block](x, 64 * 2**stage, stride, f"stage{stage + 1}_block{b + 1}")
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.Model(inputs, classifier_logits(x, num_classes), name=name or f"resnet{depth}")


for _depth in CIFAR_DEPTHS:
    register_model(f"resnet{_depth}", build_cifar_resnet, depth=_depth)
    register_model(f"resnet{_depth}v2", build_cifar_resnet, depth=_depth, version=2)
# ResNet-20 at twice the width (32/64/128 filters, ~4× the parameters; torchvision's "wide_resnet50_2" naming):
# under bfloat16 on AMX its step costs ~2× ResNet-20's, not 4×, which buys accuracy per hour of training.
register_model("wide_resnet20_2", build_cifar_resnet, depth=20, width=32, name="wide_resnet20_2")
for _name, _variant in IMAGENET_RESNETS.items():
    register_model(_name, build_resnet, **_variant)
