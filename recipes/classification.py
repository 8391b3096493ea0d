"""Image classification, end to end: data → model → training → evaluation → SavedModel.

    python recipes/classification.py --dataset mnist --model cnn --epochs 10
    python recipes/classification.py --dataset image_folder --data-dir ~/flowers --image-size 64
    python recipes/classification.py --dataset folder --data-dir ~/photos --image-size 224 --model resnet18 --skip-bad-images
    python recipes/classification.py --dataset mnist --model cnn --adversarial-eps 0.3 --robustness-eps 0 0.1 0.3

The recipe's code is ``kvision/recipes/classification.py``, installed with the package:
``kvision train classification …`` runs the same; ``--help`` explains every flag.
"""

from kvision.console import start_tensorflow

start_tensorflow()  # before TensorFlow is imported: oneDNN kernels on, its C++ start-up lines hidden (not with --verbose)

from kvision.recipes.classification import main  # noqa: E402

if __name__ == "__main__":
    main()
