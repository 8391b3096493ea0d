"""Model builders, registered by name: ``build("resnet20", (32, 32, 3), 10)``; the GAN model; seq2seq decoding."""

from kvision.models.cnn import build_cnn
from kvision.models.gan import GAN, build_dcgan_discriminator, build_dcgan_generator
from kvision.models.registry import build, get_builder, list_models, register_model
from kvision.models.resnet import build_cifar_resnet, build_resnet
from kvision.models.seq2seq import build_rnn_seq2seq, build_transformer_seq2seq, seq2seq_parts

__all__ = [
    "GAN",
    "build",
    "build_cifar_resnet",
    "build_cnn",
    "build_dcgan_discriminator",
    "build_dcgan_generator",
    "build_resnet",
    "build_rnn_seq2seq",
    "build_transformer_seq2seq",
    "get_builder",
    "list_models",
    "register_model",
    "seq2seq_parts",
]
