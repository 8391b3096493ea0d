"""Image classifier builders, registered by name: ``build("resnet20", (32, 32, 3), 10)``."""

from kvision.models.cnn import build_cnn
from kvision.models.registry import build, get_builder, list_models, register_model
from kvision.models.resnet import build_cifar_resnet, build_resnet

__all__ = [
    "build",
    "build_cifar_resnet",
    "build_cnn",
    "build_resnet",
    "get_builder",
    "list_models",
    "register_model",
]
