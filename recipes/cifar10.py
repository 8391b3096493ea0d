"""CIFAR-10 classification with the published ResNet schedule.

    python recipes/cifar10.py                                  # ResNet-20, TFDS download
    python recipes/cifar10.py --data-dir ~/data/cifar-10-python.tar.gz
    python recipes/cifar10.py --model resnet56 --data-dir ~/data/cifar-10-batches-bin

The recipe's code is ``kvision/recipes/cifar10.py``, installed with the package:
``kvision train cifar10 …`` runs the same; ``--help`` explains every flag.
"""

from kvision.console import start_tensorflow

start_tensorflow()  # before TensorFlow is imported: oneDNN kernels on, its C++ start-up lines hidden (not with --verbose)

from kvision.recipes.cifar10 import main  # noqa: E402

if __name__ == "__main__":
    main()
