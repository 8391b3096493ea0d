"""Knowledge distillation, then magnitude pruning: a small, fast classifier taught by a big one.

    python recipes/distill.py                            # resnet56 teacher → resnet20 student, Fashion-MNIST
    python recipes/distill.py --teacher runs/fashion_mnist_resnet56/checkpoints/best.keras
    python recipes/distill.py --student cnn --alpha 0.5 --temperature 2 --sparsity 0.9

The recipe's code is ``kvision/recipes/distill.py``, installed with the package:
``kvision train distill …`` runs the same; ``--help`` explains every flag.
"""

from kvision.console import start_tensorflow

start_tensorflow()  # before TensorFlow is imported: oneDNN kernels on, its C++ start-up lines hidden (not with --verbose)

from kvision.recipes.distill import main  # noqa: E402

if __name__ == "__main__":
    main()
