"""Translation (or any text-to-text task) from a tab-separated pairs file.

    python recipes/translate.py --pairs fra.txt                 # ManyThings/Tatoeba "English<TAB>French<TAB>…"
    python recipes/translate.py --pairs fra.txt --model transformer --lr 1e-3
    python recipes/translate.py --pairs pairs.tsv --reverse     # translate column 2 into column 1

The recipe's code is ``kvision/recipes/translate.py``, installed with the package:
``kvision train translate …`` runs the same; ``--help`` explains every flag.
"""

from kvision.console import start_tensorflow

start_tensorflow()  # before TensorFlow is imported: oneDNN kernels on, its C++ start-up lines hidden (not with --verbose)

from kvision.recipes.translate import main  # noqa: E402

if __name__ == "__main__":
    main()
