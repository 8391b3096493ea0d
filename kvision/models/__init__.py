"""Model builders, registered by name: ``build("resnet20", (32, 32, 3), 10)``; the GAN and VAE models; seq2seq and captioning decoding."""

from kvision.models.captioning import build_show_attend_tell, captioning_parts
from kvision.models.cnn import build_cnn
from kvision.models.gan import GAN, build_dcgan_discriminator, build_dcgan_generator
from kvision.models.registry import build, get_builder, list_models, register_model
from kvision.models.resnet import build_cifar_resnet, build_resnet
from kvision.models.seq2seq import build_rnn_seq2seq, build_transformer_seq2seq, seq2seq_parts
from kvision.models.vae import VAE, build_vae_decoder, build_vae_encoder

__all__ = [
    "GAN",
    "VAE",
    "build",
    "build_cifar_resnet",
    "build_cnn",
    "build_dcgan_discriminator",
    "build_dcgan_generator",
    "build_resnet",
    "build_rnn_seq2seq",
    "build_show_attend_tell",
    "build_transformer_seq2seq",
    "build_vae_decoder",
    "build_vae_encoder",
    "captioning_parts",
    "get_builder",
    "list_models",
    "register_model",
    "seq2seq_parts",
]
