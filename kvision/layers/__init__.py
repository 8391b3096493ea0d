"""Small Keras building blocks shared by several model families."""

from kvision.layers.blocks import bn_relu, conv2d, conv_bn_relu
from kvision.layers.flip import MirrorImages
from kvision.layers.normalization import FusedBatchNormalization
from kvision.layers.preprocessing import preprocess

__all__ = ["FusedBatchNormalization", "MirrorImages", "bn_relu", "conv2d", "conv_bn_relu", "preprocess"]
