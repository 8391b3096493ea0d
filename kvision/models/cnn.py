"""A small VGG-style CNN, the classic baseline for Fashion-MNIST and CIFAR-10.

Stacks of 3×3 conv(-BN)-ReLU, each closed by a 2×2 max-pool and dropout, then a
dense head (Simonyan & Zisserman 2014, https://arxiv.org/abs/1409.1556, scaled
down; batch norm from Ioffe & Szegedy 2015, https://arxiv.org/abs/1502.03167).
"""

import keras
from keras import layers

from kvision.layers import conv_bn_relu
from kvision.models.common import classifier_input, classifier_logits, is_positive_int, require
from kvision.models.registry import register_model

POOLINGS = {"flatten": layers.Flatten, "avg": layers.GlobalAveragePooling2D}


@register_model("cnn")
def build_cnn(
    input_shape,
    num_classes,
    *,
    filters=(32, 64, 128),
    convs_per_block=2,
    dense_units=256,
    dropout=0.25,
    dense_dropout=0.5,
    batch_norm=True,
    pooling="flatten",
    mean=None,
    std=None,
    name="cnn",
):
    """Build the VGG-style CNN.

    Args:
        input_shape: ``(height, width, channels)``, at least ``2 ** len(filters)`` pixels
            high and wide (one 2×2 max-pool per block).
        num_classes: number of output logits.
        filters: conv filters of each block; one block per entry.
        convs_per_block: 3×3 convolutions per block.
        dense_units: units of the hidden dense layer.
        dropout: dropout rate after each block.
        dense_dropout: dropout rate after the hidden dense layer.
        batch_norm: batch norm after every convolution.
        pooling: ``"flatten"`` (the classic head) or ``"avg"`` (global average pooling,
            fewer parameters on large inputs) between the blocks and the dense head.
        mean, std: per-channel statistics of the raw training images, see
            :func:`kvision.layers.preprocess`.
        name: model name.
    """
    require(
        isinstance(filters, (tuple, list)) and filters and all(map(is_positive_int, filters)),
        "filters must be a non-empty sequence of positive integers, one per block.",
        filters=filters,
    )
    for label, count in (("convs_per_block", convs_per_block), ("dense_units", dense_units)):
        require(is_positive_int(count), f"{label} must be a positive integer.", **{label: count})
    for label, rate in (("dropout", dropout), ("dense_dropout", dense_dropout)):
        require(
            isinstance(rate, (int, float)) and 0 <= rate < 1,
            f"{label} must be a rate in [0, 1).",
            **{label: rate},
        )
    require(pooling in POOLINGS, f"pooling must be one of {', '.join(POOLINGS)}.", pooling=pooling)

    blocks = len(filters)
    inputs, x = classifier_input(
        input_shape,
        num_classes,
        min_size=2**blocks,
        model=f"A CNN with {blocks} pooling stage{'s' * (blocks > 1)}",
        mean=mean,
        std=std,
    )
    for b, block_filters in enumerate(filters, start=1):
        for c in range(1, convs_per_block + 1):
            x = conv_bn_relu(x, block_filters, 3, f"block{b}_conv{c}", batch_norm=batch_norm)
        x = layers.MaxPooling2D(2, name=f"block{b}_pool")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"block{b}_dropout")(x)
    x = POOLINGS[pooling](name="head_pool")(x)
    x = layers.Dense(
        dense_units, activation="relu", kernel_initializer="he_normal", name="head_dense"
    )(x)
    if dense_dropout:
        x = layers.Dropout(dense_dropout, name="head_dropout")(x)
    return keras.Model(inputs, classifier_logits(x, num_classes), name=name)
