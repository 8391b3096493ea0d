"""Fashion-MNIST classification: the README's main job.

    python recipes/fashion_mnist.py                      # the small CNN, documented result
    python recipes/fashion_mnist.py --model resnet20 --epochs 30
    python recipes/fashion_mnist.py --data-dir ~/data/fashion-mnist   # the four IDX .gz files

The recipe's code is ``kvision/recipes/fashion_mnist.py``, installed with the package:
``kvision train fashion_mnist …`` runs the same; ``--help`` explains every flag.
"""

from kvision.console import start_tensorflow

start_tensorflow()  # before TensorFlow is imported: oneDNN kernels on, its C++ start-up lines hidden (not with --verbose)

from kvision.recipes.fashion_mnist import main  # noqa: E402

if __name__ == "__main__":
    main()
