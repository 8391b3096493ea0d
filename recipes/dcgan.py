"""DCGAN and conditional DCGAN: data → GAN training → Fréchet distance → generator export.

    python recipes/dcgan.py --conditional         # class-conditional DCGAN on Fashion-MNIST (documented result)
    python recipes/dcgan.py                       # unconditional DCGAN, same schedule
    python recipes/dcgan.py --dataset cifar10 --data-dir ~/data/cifar-10-batches-bin
    python recipes/dcgan.py --conditional --cas   # … and the classification accuracy score

The recipe's code is ``kvision/recipes/dcgan.py``, installed with the package:
``kvision train dcgan …`` runs the same; ``--help`` explains every flag.
"""

from kvision.console import start_tensorflow

start_tensorflow()  # before TensorFlow is imported: oneDNN kernels on, its C++ start-up lines hidden (not with --verbose)

from kvision.recipes.dcgan import main  # noqa: E402

if __name__ == "__main__":
    main()
