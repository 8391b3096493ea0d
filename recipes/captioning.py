"""Image captioning with visual attention (Show, Attend and Tell): data → vocabulary → training → BLEU → SavedModel.

    python recipes/captioning.py                                  # scenes composed from Fashion-MNIST, offline
    python recipes/captioning.py --dataset folder --data-dir ~/flickr8k --image-size 128 --backbone resnet20
    python recipes/captioning.py --dataset coco_captions --image-size 128 --limit 20000 --backbone resnet20

The recipe's code is ``kvision/recipes/captioning.py``, installed with the package:
``kvision train captioning …`` runs the same; ``--help`` explains every flag.
"""

from kvision.console import start_tensorflow

start_tensorflow()  # before TensorFlow is imported: oneDNN kernels on, its C++ start-up lines hidden (not with --verbose)

from kvision.recipes.captioning import main  # noqa: E402

if __name__ == "__main__":
    main()
