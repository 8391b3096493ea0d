"""Fashion-MNIST classification: the README's main job.

    kvision train fashion_mnist                      # the small CNN, documented result
    kvision train fashion_mnist --model resnet20 --epochs 30
    kvision train fashion_mnist --data-dir ~/data/fashion-mnist   # the four IDX .gz files

The data is found without a download at /usr/share/datasets/fashion-mnist
(Debian: ``apt-get install dataset-fashion-mnist``) or ~/.keras/datasets/fashion-mnist,
else fetched with TFDS. 5 000 training images are held out for validation
(best checkpoint); the test split is used once, at the end. Defaults: SGD with
momentum 0.9, peak LR 0.05 on a cosine schedule, L2 1e-4, batch 128,
horizontal flips (no crop: at 28×28 the small CNN underfits with it). Results
are in the README.
"""

from kvision.recipes import classification


def main(argv=None):
    """``classification.main`` with this recipe's defaults."""
    return classification.main(
        argv,
        description=__doc__,
        dataset="fashion_mnist",
        model="cnn",
        epochs=20,
        lr=0.05,
        weight_decay=1e-4,
        crop_padding=0,
    )
