"""CIFAR-10 classification with the published ResNet schedule.

    python recipes/cifar10.py                                  # ResNet-20, TFDS download
    python recipes/cifar10.py --data-dir ~/data/cifar-10-python.tar.gz
    python recipes/cifar10.py --model resnet56 --data-dir ~/data/cifar-10-batches-bin

Defaults follow He et al. 2016 (https://arxiv.org/abs/1512.03385, §4.2): SGD
0.1, momentum 0.9, weight decay 1e-4, batch 128, 164 epochs with the learning
rate divided by 10 at 50% and 75% of training, 4-pixel pad-and-crop +
horizontal flip, trained on all 50 000 training images. Expected test
accuracy: ≈91–92% for ResNet-20 (the paper reports 91.25%); not measured on
this project's offline machines, where CIFAR-10 cannot be downloaded.
"""

from classification import main

if __name__ == "__main__":
    main(
        description=__doc__,
        dataset="cifar10",
        model="resnet20",
        epochs=164,
        lr=0.1,
        weight_decay=1e-4,
        schedule="piecewise",
        validation_size=0,
        crop_padding=4,
    )
