"""Fashion-MNIST classification: the README's main job.

    kvision train fashion_mnist                      # the fast default: cnn_fast, 8 epochs, flip TTA
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
flip``: +0.3 points of test accuracy for a second forward pass). The
former default, the VGG-style ``cnn`` for 20 epochs (93.0–93.2%, about 50
minutes of training on the same machine), is one command away::

    kvision train fashion_mnist --model cnn --epochs 20 --lr 0.05 --weight-decay 1e-4 \\
        --warmup-epochs 0 --label-smoothing 0 --tta none
"""

from kvision.recipes import classification

DEFAULTS = dict(
    dataset="fashion_mnist",
    model="cnn_fast",
    epochs=8,
    lr=0.1,
    weight_decay=5e-4,
    warmup_epochs=1.0,
    label_smoothing=0.1,
    crop_padding=0,
    tta="flip",
)
# The former default's flags (the docstring's command): what kvision.evaluate.cas trains on generated images.
CLASSIC = ("--model", "cnn", "--epochs", "20", "--lr", "0.05", "--weight-decay", "1e-4", "--warmup-epochs", "0",
           "--label-smoothing", "0", "--tta", "none")


def main(argv=None):
    """``classification.main`` with this recipe's defaults."""
    return classification.main(argv, description=__doc__, **DEFAULTS)
