"""CIFAR-10 classification with the published ResNet schedule.

    kvision train cifar10                                  # ResNet-20, TFDS download
    kvision train cifar10 --data-dir ~/data/cifar-10-python.tar.gz
    kvision train cifar10 --model resnet56 --data-dir ~/data/cifar-10-batches-bin

Defaults follow He et al. 2016 (https://arxiv.org/abs/1512.03385, §4.2): SGD
0.1, momentum 0.9, weight decay 1e-4, batch 128, 164 epochs with the learning
rate divided by 10 at 50% and 75% of training, 4-pixel pad-and-crop +
horizontal flip, trained on all 50 000 training images. Expected test
accuracy: ≈91–92% for ResNet-20 (the paper reports 91.25%); not measured on
this project's offline machines, where CIFAR-10 cannot be downloaded.

``--preset fast`` is the schedule of the Fashion-MNIST main job, for when
time matters more than comparing with the paper (5.5× fewer epochs)::

    kvision train cifar10 --preset fast     # = --epochs 30 --schedule cosine --warmup-epochs 1
                                            #   --label-smoothing 0.1 --weight-decay 5e-4 --tta flip

Expected test accuracy with ResNet-20: ≈90–91% (an expectation from cosine
schedules of this length in the literature, not a measurement: no CIFAR-10
here either).
"""

from kvision.recipes import classification


PRESETS = {
    "paper": dict(epochs=164, schedule="piecewise", warmup_epochs=0.0, label_smoothing=0.0, weight_decay=1e-4,
                  tta="none"),
    "fast": dict(epochs=30, schedule="cosine", warmup_epochs=1.0, label_smoothing=0.1, weight_decay=5e-4, tta="flip"),
}


def main(argv=None):
    """``classification.main`` with this recipe's defaults and presets."""
    return classification.main(argv, description=__doc__, presets=PRESETS, dataset="cifar10", model="resnet20", lr=0.1,
                               validation_size=0, crop_padding=4)
