"""Convolution building blocks shared by the image classifiers.

They follow the reference ResNets (fb.resnet.torch, torchvision): He-normal
initialisation, no convolution bias in front of batch norm, batch-norm momentum
0.9 and epsilon 1e-5. Every layer is named after the ``name`` it is given.
"""

from keras import layers

from kvision.layers.normalization import FusedBatchNormalization

BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


def conv2d(x, filters, kernel_size, name, *, strides=1, use_bias=False):
    """A He-normal ``Conv2D`` named ``name``; strided kernels are padded symmetrically.

    Keras' ``padding="same"`` pads a strided convolution at the bottom/right only,
    which centres its kernels on odd pixels while a strided 1×1 shortcut keeps the
    even ones. An explicit ``ZeroPadding2D(kernel_size // 2)`` gives the same
    ``ceil(size / strides)`` outputs, centred on the pixels the shortcut keeps (as
    torchvision does).
    """
    padding = "same"
    if strides > 1 and kernel_size > 1:
        x = layers.ZeroPadding2D(kernel_size // 2, name=f"{name}_pad")(x)
        padding = "valid"
    return layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        use_bias=use_bias,
        kernel_initializer="he_normal",
        name=name,
    )(x)


def bn_relu(x, name, *, batch_norm=True, relu=True):
    """Batch norm (``{name}_bn``) then ReLU (``{name}_relu``), each optional."""
    if batch_norm:
        x = FusedBatchNormalization(
            momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=f"{name}_bn"
        )(x)
    if relu:
        x = layers.ReLU(name=f"{name}_relu")(x)
    return x


def conv_bn_relu(x, filters, kernel_size, name, *, strides=1, batch_norm=True, relu=True):
    """``{name}_conv`` → ``{name}_bn`` → ``{name}_relu``; a conv bias only without BN."""
    x = conv2d(x, filters, kernel_size, f"{name}_conv", strides=strides, use_bias=not batch_norm)
    return bn_relu(x, name, batch_norm=batch_norm, relu=relu)
