"""Variational autoencoder on Fashion-MNIST: training → test ELBO → pictures → decoder export.

    python recipes/vae.py                        # 2-D latent space: the traversal grid is the whole manifold
    python recipes/vae.py --latent-dim 16        # a richer code; the grid sweeps latent dimensions 0 and 1
    python recipes/vae.py --beta 4               # β-VAE: more KL pressure, smoother and blurrier

Fashion-MNIST is found locally as in fashion_mnist.py; ``--validation-size``
training images are held out to pick the best epoch (lowest validation loss).
The test split gives the ELBO, in nats per image (Bernoulli likelihood of the
pixel intensities in [0, 1], one posterior draw per image; the β = 1 bound,
whatever β trained), with its reconstruction and KL parts.

Outputs: <run-dir>/ (config.json, TensorBoard logs with reconstructions and
the latent traversal every epoch, samples/*.png, checkpoints/{best,last}.keras
holding the whole VAE, history.csv, evaluation/quality.json) and the decoder,
exported like a GAN generator to <export-dir>/<name>/<version>/:
``serving_default(noise) -> images`` (uint8) and a TFLite file, where
``noise`` is a latent drawn from the prior N(0, I).
"""

import argparse
import json
import sys
import time
from functools import partial
from pathlib import Path

from kvision.data import load_dataset, train_validation_split
from kvision.export.cli import add_export_arguments, check_export_arguments, export_for_generator, finish
from kvision.export.tflite import check_generator_variants, parse_variants
from kvision.models import VAE, build
from kvision.train import get_strategy, is_chief
from kvision.train.cli import (add_data_arguments, add_run_arguments, add_speed_arguments, open_recipe_run, run_recipe,
                               untrained_settings)
from kvision.train.vae import fit_vae, latent_traversal, reconstruction_grid, vae_pipeline, write_png


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arguments(parser, "fashion_mnist, mnist, cifar10 or cifar100")
    parser.add_argument("--validation-size", type=int, default=5000, help="training images held out (default: %(default)s)")

    model = parser.add_argument_group("model")
    model.add_argument("--latent-dim", type=int, default=2, help="size of the latent space (default: %(default)s)")
    model.add_argument("--filters", type=int, nargs="+", default=[32, 64],
                       help="encoder channels per stride-2 convolution; the decoder mirrors them (default: %(default)s)")
    model.add_argument("--dense-units", type=int, default=128, help="(default: %(default)s)")
    model.add_argument("--beta", type=float, default=1.0, help="weight of the KL term; 1: the ELBO (default: %(default)s)")

    train = parser.add_argument_group("training")
    train.add_argument("--epochs", type=int, default=30, help="(default: %(default)s)")
    train.add_argument("--batch-size", type=int, default=128, help="per replica (default: %(default)s)")
    train.add_argument("--lr", type=float, default=1e-3, help="Adam peak learning rate, cosine decay (default: %(default)s)")
    add_speed_arguments(parser)

    run = parser.add_argument_group("run")
    run.add_argument("--seed", type=int, default=0, help="seeds weights, noise, split and shuffling (default: %(default)s)")
    run.add_argument("--run-dir", help="logs, pictures, checkpoints (default: runs/<dataset>_vae_<latent-dim>d)")
    run.add_argument("--name", help="served model name (default: <dataset>_vae_<latent-dim>d)")
    add_run_arguments(run)
    add_export_arguments(parser, classifier=False)
    return parser


def run(args, *, may_change):
    """Train, measure and export for parsed ``args``; ``may_change`` as in ``open_recipe_run``."""
    check_export_arguments(args)
    check_generator_variants(parse_variants(args.tflite))  # before training, not after
    strategy = get_strategy()  # first: a multi-worker strategy must exist before TensorFlow runs any op
    dataset = load_dataset(args.dataset, args.data_dir, download=not args.no_download)
    options = dict(latent_dim=args.latent_dim, dense_units=args.dense_units)

    def encoder_fn():
        return build("vae_encoder", dataset.image_shape, filters=args.filters, **options)

    def decoder_fn():
        return build("vae_decoder", dataset.image_shape, filters=args.filters[::-1], **options)

    VAE(encoder_fn(), decoder_fn(), beta=args.beta)  # fail on a size or option the VAE cannot take, before any output
    (train, _), (validation, _) = train_validation_split(*dataset.train, args.validation_size, seed=args.seed)
    test = dataset.test[0]
    kind = f"vae_{args.latent_dim}d"
    name = args.name or f"{args.dataset}_{kind}"
    run_dir = Path(args.run_dir or f"runs/{args.dataset}_{kind}")
    open_recipe_run(run_dir, args, may_change)
    print(f"data: {dataset.name} from {dataset.origin}: {len(train)} train, {len(validation)} validation, "
          f"{len(test)} test images {dataset.image_shape}")

    start = time.time()
    vae = fit_vae(
        encoder_fn, decoder_fn, train, validation, run_dir=run_dir, epochs=args.epochs, batch_size=args.batch_size,
        learning_rate=args.lr, beta=args.beta, seed=args.seed, mixed_precision=args.mixed_precision, xla=args.xla,
        strategy=strategy,
    ).model
    train_seconds = time.time() - start
    report = vae.evaluate(vae_pipeline(test, batch_size=500, training=False), verbose=0, return_dict=True)
    quality = {"elbo": report["elbo"], "reconstruction": report["reconstruction"], "kl": report["kl"],
               "test_images": len(test), "beta": args.beta, "latent_dim": args.latent_dim}
    export = None
    if is_chief():
        (run_dir / "evaluation").mkdir(exist_ok=True)
        (run_dir / "evaluation" / "quality.json").write_text(json.dumps(quality, indent=2))
        write_png(run_dir / "samples" / "reconstructions.png", reconstruction_grid(vae, test[:40]))
        write_png(run_dir / "samples" / "traversal.png", latent_traversal(vae.decoder))
        export = export_for_generator(
            vae.decoder, args, name=name, quality=quality,
            training_command=" ".join(sys.argv),
            dataset={"name": dataset.name, "origin": dataset.origin, "fingerprint": dataset.fingerprint()},
        )
    summary = {
        "model": kind,
        "dataset": dataset.name,
        "epochs": args.epochs,
        "beta": args.beta,
        "test_elbo": round(report["elbo"], 2),
        "test_reconstruction": round(report["reconstruction"], 2),
        "test_kl": round(report["kl"], 2),
        "train_seconds": round(train_seconds, 1),
        "run_dir": str(run_dir),
        "pictures": [str(run_dir / "samples" / f"{picture}.png") for picture in ("reconstructions", "traversal")],
    }
    return finish(summary, export)


def main(argv=None):
    parser = build_parser()
    return run_recipe(partial(run, may_change=untrained_settings(parser)), parser.parse_args(argv))


if __name__ == "__main__":
    main()
