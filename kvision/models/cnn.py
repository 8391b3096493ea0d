"""Small VGG-style CNNs: the classic baseline for Fashion-MNIST and CIFAR-10, and a fast variant.

``cnn``: stacks of 3×3 conv(-BN)-ReLU, each closed by a 2×2 max-pool and
dropout, then a dense head (Simonyan & Zisserman 2014,
https://arxiv.org/abs/1409.1556, scaled down; batch norm from Ioffe & Szegedy
2015, https://arxiv.org/abs/1502.03167).

``cnn_fast``: airbench's layout (Jordan 2024, https://arxiv.org/abs/2404.00498):
a stem convolution, then blocks that pool right after their first
convolution (conv, max-pool, BN, ReLU; then conv-BN-ReLU at a quarter of the
pixels), global max-pooling into the logits, no dropout. On a 2-core CPU a
training step is bound by the memory traffic of full-resolution activations
as much as by multiply-adds, and this layout keeps only two narrow
convolutions at full resolution (9.7M multiply-adds an image at 28×28
against ``cnn``'s 29M): on the 2-core development machine it trained at
600–800 images/s against ``cnn``'s 300 (Keras ``fit``, batch 256,
TensorFlow's own kernels). It is the Fashion-MNIST main job's model
(93.7% test accuracy in 8 epochs with flip averaging; README, Results).
"""

import keras
from keras import layers

from kvision.layers import bn_relu, conv2d, conv_bn_relu
from kvision.models.common import classifier_input, classifier_logits, is_positive_int, require
from kvision.models.registry import register_model

POOLINGS = {"flatten": layers.Flatten, "avg": layers.GlobalAveragePooling2D, "max": layers.GlobalMaxPooling2D}
POOL_POSITIONS = ("last", "first")


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
    stem=0,
    pool_position="last",
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
        dense_units: units of the hidden dense layer; 0: the pooled features go
            straight to the logits.
        dropout: dropout rate after each block.
        dense_dropout: dropout rate after the hidden dense layer.
        batch_norm: batch norm after every convolution.
        pooling: ``"flatten"`` (the classic head), ``"avg"`` or ``"max"`` (global
            average or max pooling, fewer parameters on large inputs) between the
            blocks and the head.
        stem: filters of a 3×3 conv-BN-ReLU before the blocks; 0: none.
        pool_position: ``"last"`` (VGG: a block's convolutions, then its max-pool)
            or ``"first"`` (airbench: the max-pool right after the block's first
            convolution, before its batch norm and ReLU).
        mean, std: per-channel statistics of the raw training images, see
            :func:`kvision.layers.preprocess`.
        name: model name.
    """
    require(
        isinstance(filters, (tuple, list)) and filters and all(map(is_positive_int, filters)),
        "filters must be a non-empty sequence of positive integers, one per block.",
        filters=filters,
    )
    require(is_positive_int(convs_per_block), "convs_per_block must be a positive integer.",
            convs_per_block=convs_per_block)
    for label, count in (("dense_units", dense_units), ("stem", stem)):
        require(count == 0 or is_positive_int(count), f"{label} must be 0 (none) or a positive integer.",
                **{label: count})
    for label, rate in (("dropout", dropout), ("dense_dropout", dense_dropout)):
        require(
            isinstance(rate, (int, float)) and 0 <= rate < 1,
            f"{label} must be a rate in [0, 1).",
            **{label: rate},
        )
    require(pooling in POOLINGS, f"pooling must be one of {', '.join(POOLINGS)}.", pooling=pooling)
    require(pool_position in POOL_POSITIONS, f"pool_position must be one of {', '.join(POOL_POSITIONS)}.",
            pool_position=pool_position)

    blocks = len(filters)
    inputs, x = classifier_input(
        input_shape,
        num_classes,
        min_size=2**blocks,
        model=f"A CNN with {blocks} pooling stage{'s' * (blocks > 1)}",
        mean=mean,
        std=std,
    )
    if stem:
        x = conv_bn_relu(x, stem, 3, "stem", batch_norm=batch_norm)
    for b, block_filters in enumerate(filters, start=1):
        for c in range(1, convs_per_block + 1):
            if pool_position == "first" and c == 1:
                x = conv2d(x, block_filters, 3, f"block{b}_conv1_conv", use_bias=not batch_norm)
                x = layers.MaxPooling2D(2, name=f"block{b}_pool")(x)
                x = bn_relu(x, f"block{b}_conv1", batch_norm=batch_norm)
            else:
                x = conv_bn_relu(x, block_filters, 3, f"block{b}_conv{c}", batch_norm=batch_norm)
        if pool_position == "last":
            x = layers.MaxPooling2D(2, name=f"block{b}_pool")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"block{b}_dropout")(x)
    x = POOLINGS[pooling](name="head_pool")(x)
    if dense_units:
        x = layers.Dense(
            dense_units, activation="relu", kernel_initializer="he_normal", name="head_dense"
        )(x)
        if dense_dropout:
            x = layers.Dropout(dense_dropout, name="head_dropout")(x)
    return keras.Model(inputs, classifier_logits(x, num_classes), name=name)


register_model(
    "cnn_fast",
    build_cnn,
    filters=(24, 48, 96),
    stem=16,
    pool_position="first",
    pooling="max",
    dense_units=0,
    dropout=0.0,
    dense_dropout=0.0,
    name="cnn_fast",
)
