"""SimCLR: self-supervised pretraining, then a linear probe and fine-tuning on a few labels.

    python recipes/simclr.py                                   # resnet20 on Fashion-MNIST, 1% and 10% of the labels
    python recipes/simclr.py --model resnet56 --epochs 200 --batch-size 512
    python recipes/simclr.py --shares 0.01 0.05 0.1            # re-run: finished phases are skipped, 5% is added

The recipe's code is ``kvision/recipes/simclr.py``, installed with the package:
``kvision train simclr …`` runs the same; ``--help`` explains every flag.
"""

from kvision.console import start_tensorflow

start_tensorflow()  # before TensorFlow is imported: oneDNN kernels on, its C++ start-up lines hidden (not with --verbose)

from kvision.recipes.simclr import main  # noqa: E402

if __name__ == "__main__":
    main()
