"""Variational autoencoder on Fashion-MNIST: training → test ELBO → pictures → decoder export.

    python recipes/vae.py                        # 2-D latent space: the traversal grid is the whole manifold
    python recipes/vae.py --latent-dim 16        # a richer code; the grid sweeps latent dimensions 0 and 1
    python recipes/vae.py --beta 4               # β-VAE: more KL pressure, smoother and blurrier

The recipe's code is ``kvision/recipes/vae.py``, installed with the package:
``kvision train vae …`` runs the same; ``--help`` explains every flag.
"""

from kvision.console import start_tensorflow

start_tensorflow()  # before TensorFlow is imported: oneDNN kernels on, its C++ start-up lines hidden (not with --verbose)

from kvision.recipes.vae import main  # noqa: E402

if __name__ == "__main__":
    main()
