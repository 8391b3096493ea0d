"""Transfer learning: fine-tune a pretrained backbone on your images, or measure what pretraining buys with few labels.

    python recipes/transfer.py --backbone EfficientNetB0 --dataset folder --data-dir ~/photos --image-size 224
    python recipes/transfer.py --backbone ResNet50V2 --weights ~/resnet50v2_notop.h5 --dataset tfds:tf_flowers \\
        --image-size 224 --head-lr 0.01 --finetune-lr 0.001
    python recipes/transfer.py                                   # the study: cnn on Fashion-MNIST, classes 0-4 → 5-9
    python recipes/transfer.py --model resnet20 --shares 0.01 0.05 0.2
    python recipes/transfer.py --trainable head --epochs 0       # linear probe of the pretrained features

The recipe's code is ``kvision/recipes/transfer.py``, installed with the package:
``kvision train transfer …`` runs the same; ``--help`` explains every flag.
"""

from kvision.console import start_tensorflow

start_tensorflow()  # before TensorFlow is imported: oneDNN kernels on, its C++ start-up lines hidden (not with --verbose)

from kvision.recipes.transfer import main  # noqa: E402

if __name__ == "__main__":
    main()
