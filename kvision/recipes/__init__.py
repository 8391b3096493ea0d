"""The recipes: each wires data → model → training → evaluation → export for one job, behind ``kvision train NAME``.

A recipe module has ``main(argv=None)``; its flags are documented by
``kvision train NAME --help``. ``recipes/NAME.py`` in the repository is the
same recipe as a script. ``RECIPES`` lists them with one line each, read
without importing them (they import TensorFlow).
"""

RECIPES = {
    "fashion_mnist": "Fashion-MNIST classification, the README's main job (small CNN)",
    "cifar10": "CIFAR-10 classification with the published ResNet schedule",
    "classification": "image classification on any dataset: in memory, image folders, TFRecord shards, TFDS",
    "transfer": "fine-tune a pretrained backbone, or measure what pretraining buys with few labels",
    "dcgan": "DCGAN and conditional DCGAN, Fréchet distance, generator export",
    "vae": "variational autoencoder: test ELBO, pictures, decoder export",
    "g2p_cmudict": "grapheme-to-phoneme conversion on the CMU Pronouncing Dictionary",
    "translate": "translation (any text-to-text task) from a tab-separated pairs file",
    "captioning": "image captioning with visual attention (Show, Attend and Tell)",
    "simclr": "SimCLR self-supervised pretraining, linear probe and fine-tuning on few labels",
    "distill": "knowledge distillation, then magnitude pruning, measured as int8 TFLite",
}
