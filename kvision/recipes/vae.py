"""Variational autoencoder on Fashion-MNIST: training → test ELBO → pictures → decoder export.

    kvision train vae                        # 2-D latent space: the traversal grid is the whole manifold
    kvision train vae --latent-dim 16        # a richer code; the grid sweeps latent dimensions 0 and 1
    kvision train vae --beta 4               # β-VAE: more KL pressure, smoother and blurrier

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

import json
import time
from pathlib import Path

from kvision.data import load_dataset, train_validation_split
from kvision.export.tflite import check_generator_variants, parse_variants
from kvision.models import VAE, build
from kvision.recipes.common import (add_data_arguments, add_export_arguments, add_run_arguments, add_speed_arguments,
                                    announce_model, check_export_arguments, export_for_generator, finish,
                                    open_recipe_run, recipe_parser, run_recipe, tensorboard_options,
                                    training_command)
from kvision.train import get_strategy, is_chief
from kvision.train.vae import fit_vae, latent_traversal, reconstruction_grid, vae_pipeline, write_png


def build_parser():
    parser = recipe_parser(__doc__)
    add_data_arguments(parser, "fashion_mnist, mnist, cifar10 or cifar100")
    parser.add_argument("--validation-size", type=int, default=5000, help="training images held out")

    model = parser.add_argument_group("model")
    model.add_argument("--latent-dim", type=int, default=2, help="size of the latent space")
    model.add_argument("--filters", type=int, nargs="+", default=[32, 64],
                       help="encoder channels per stride-2 convolution; the decoder mirrors them")
    model.add_argument("--dense-units", type=int, default=128, help="width of the dense layer between the convolutions and the latent")
    model.add_argument("--beta", type=float, default=1.0, help="weight of the KL term; 1: the ELBO")

    train = parser.add_argument_group("training")
    train.add_argument("--epochs", type=int, default=30, help="passes over the training images")
    train.add_argument("--batch-size", type=int, default=128, help="per replica")
    train.add_argument("--lr", type=float, default=1e-3, help="Adam peak learning rate, cosine decay")
    add_speed_arguments(parser)

    run = parser.add_argument_group("run")
    run.add_argument("--seed", type=int, default=0, help="seeds weights, noise, split and shuffling")
    run.add_argument("--run-dir", help="logs, pictures, checkpoints (default: runs/<dataset>_vae_<latent-dim>d)")
    run.add_argument("--name", help="served model name (default: <dataset>_vae_<latent-dim>d)")
    add_run_arguments(run)
    add_export_arguments(parser, classifier=False)
    return parser


def run(args, *, rules):
    """Train, measure and export for parsed ``args``; ``rules`` from ``run_recipe``."""
    check_export_arguments(args)
    check_generator_variants(parse_variants(args.tflite))  # before training, not after
    strategy = get_strategy()  # first: a multi-worker strategy must exist before TensorFlow runs any op
    dataset = load_dataset(args.dataset, args.data_dir, download=not args.no_download)
    options = dict(latent_dim=args.latent_dim, dense_units=args.dense_units)

    def encoder_fn():
        return build("vae_encoder", dataset.image_shape, filters=args.filters, **options)

    def decoder_fn():
        return build("vae_decoder", dataset.image_shape, filters=args.filters[::-1], **options)

    encoder, decoder = encoder_fn(), decoder_fn()
    VAE(encoder, decoder, beta=args.beta)  # fail on a size or option the VAE cannot take, before any output
    announce_model("vae_encoder", encoder)
    announce_model("vae_decoder", decoder)
    (train, _), (validation, _) = train_validation_split(*dataset.train, args.validation_size, seed=args.seed)
    test = dataset.test[0]
    kind = f"vae_{args.latent_dim}d"
    name = args.name = args.name or f"{args.dataset}_{kind}"  # recorded: `kvision runs` finds the export
    run_dir = Path(args.run_dir or f"runs/{args.dataset}_{kind}")
    open_recipe_run(run_dir, args, rules, strategy=strategy)
    print(f"data: {dataset.name} from {dataset.origin}: {len(train)} train, {len(validation)} validation, "
          f"{len(test)} test images {dataset.image_shape}")

    start = time.time()
    vae = fit_vae(
        encoder_fn, decoder_fn, train, validation, run_dir=run_dir, epochs=args.epochs, batch_size=args.batch_size,
        learning_rate=args.lr, beta=args.beta, seed=args.seed, mixed_precision=args.mixed_precision, xla=args.xla,
        strategy=strategy, **tensorboard_options(args),
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
            training_command=training_command(),
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
    return finish(summary, export, run_dir=run_dir)


def main(argv=None):
    """Parse ``argv`` and run; errors a user caused print one line."""
    return run_recipe(run, build_parser(), argv)


if __name__ == "__main__":
    main()
