"""Fashion-MNIST classification: the README's main job.

    kvision train fashion_mnist                      # the fast default: cnn_fast, 8 epochs, flip TTA
    kvision train fashion_mnist --preset best --mixed-precision bfloat16   # wide ResNet-20, random erasing
    kvision train fashion_mnist --preset classic     # the former default, the VGG-style cnn
    kvision train fashion_mnist --model resnet20 --epochs 30
    kvision train fashion_mnist --data-dir ~/data/fashion-mnist   # the four IDX .gz files

The data is found without a download at /usr/share/datasets/fashion-mnist
(Debian: ``apt-get install dataset-fashion-mnist``) or ~/.keras/datasets/fashion-mnist,
else fetched with TFDS. 5 000 training images are held out for validation
(best checkpoint); the test split is used once, at the end.

Defaults, chosen for time to accuracy on a 2-core CPU (measurements in the
README's Results): ``cnn_fast`` (airbench's layout, 0.17M parameters,
9.7M multiply-adds an image), 8 epochs of SGD with momentum 0.9 at batch 128,
one epoch of linear warm-up to LR 0.1 then cosine decay to 0, L2 5e-4,
label smoothing 0.1, horizontal flips (no crops), and the evaluated and
exported model averages the logits of each image and its mirror (``--tta
flip``: +0.3 points of test accuracy for a second forward pass).

``--preset classic`` is the former default, the VGG-style ``cnn`` for 20
epochs (93.0–93.2%, about 50 minutes of training on the same machine).
``--preset best`` trades time for accuracy: ``wide_resnet20_2`` (ResNet-20 at 32/64/128
filters, 1.08M parameters) for 75 epochs with 2-pixel pad-and-crop, flips and random
erasing (p = 0.5; https://arxiv.org/abs/1708.04896), otherwise the same schedule and
flip TTA. Run it with ``--mixed-precision bfloat16`` on CPUs with AMX or AVX512-BF16:
there its step costs ~2× ResNet-20's (212 vs 104 ms a batch of 128), in float32 467 ms.
Measured (README's Results): 95.99% test accuracy in 2 h 0 min of training, where
ResNet-20 for 110 float32 epochs (``--model resnet20 --epochs 110``, the former
preset) gave 95.46% and 95.26% in ~2 h 15 min.
``--help`` spells every preset out as flags; flags given override a preset's.
"""

from kvision.recipes import classification
from kvision.recipes.common import parse_recipe_args

PRESETS = {
    "fast": dict(model="cnn_fast", epochs=8, lr=0.1, weight_decay=5e-4, warmup_epochs=1.0, label_smoothing=0.1,
                 crop_padding=0, random_erasing=0.0, tta="flip"),
    "best": dict(model="wide_resnet20_2", epochs=75, lr=0.1, weight_decay=5e-4, warmup_epochs=1.0, label_smoothing=0.1,
                 crop_padding=2, random_erasing=0.5, tta="flip"),
    # The former default; what kvision.evaluate.cas trains on generated images.
    "classic": dict(model="cnn", epochs=20, lr=0.05, weight_decay=1e-4, warmup_epochs=0.0, label_smoothing=0.0,
                    crop_padding=0, random_erasing=0.0, tta="none"),
}
DEFAULTS = dict(dataset="fashion_mnist")  # and the first preset's (add_preset_argument sets them)


def settings(argv=()):
    """The recipe's parsed flags for ``argv`` (``--preset`` included), as ``main`` would run them."""
    return parse_recipe_args(classification.build_parser(__doc__, DEFAULTS, PRESETS), list(argv))


def main(argv=None):
    """``classification.main`` with this recipe's defaults and presets."""
    return classification.main(argv, description=__doc__, presets=PRESETS, **DEFAULTS)
