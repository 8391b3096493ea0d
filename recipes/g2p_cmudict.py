"""Grapheme-to-phoneme conversion on the CMU Pronouncing Dictionary.

    python recipes/g2p_cmudict.py                        # attention LSTM, documented result
    python recipes/g2p_cmudict.py --model transformer --lr 1e-3

The recipe's code is ``kvision/recipes/g2p_cmudict.py``, installed with the package:
``kvision train g2p_cmudict …`` runs the same; ``--help`` explains every flag.
"""

from kvision.console import start_tensorflow

start_tensorflow()  # before TensorFlow is imported: oneDNN kernels on, its C++ start-up lines hidden (not with --verbose)

from kvision.recipes.g2p_cmudict import main  # noqa: E402

if __name__ == "__main__":
    main()
