"""Model builders, registered by name: ``build("resnet20", (32, 32, 3), 10)``; the GAN model."""

from kvision.models.cnn import build_cnn
from kvision.models.gan import GAN, build_dcgan_discriminator, build_dcgan_generator
from kvision.models.registry import build, get_builder, list_models, register_model
from kvision.models.resnet import build_cifar_resnet, build_resnet

__all__ = [
    "GAN",
    "build",
    "build_cifar_resnet",
    "build_cnn",
    "build_dcgan_discriminator",
    "build_dcgan_generator",
    "build_resnet",
    "get_builder",
    "list_models",
    "register_model",
]
