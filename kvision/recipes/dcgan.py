"""DCGAN and conditional DCGAN: data → GAN training → Fréchet distance → generator export.

    kvision train dcgan --conditional         # class-conditional DCGAN on Fashion-MNIST (documented result)
    kvision train dcgan                       # unconditional DCGAN, same schedule
    kvision train dcgan --dataset cifar10 --data-dir ~/data/cifar-10-batches-bin
    kvision train dcgan --conditional --cas   # … and the classification accuracy score

Conditional candidates beside the default (label as an extra input channel of
the discriminator, non-saturating loss, Adam 2e-4 / beta1 0.5 for both):

    # projection discriminator with hinge loss and spectral normalisation (Miyato & Koyama 2018)
    kvision train dcgan --conditional --discriminator projection --loss hinge --spectral-norm --dropout 0 \
        --beta1 0 --beta2 0.9 --fake-labels balanced
    # two time-scale learning rates (Heusel et al. 2017)
    kvision train dcgan --conditional --d-lr 4e-4 --g-lr 1e-4
    # auxiliary-classifier discriminator (ACGAN, Odena et al. 2017), class-balanced real batches
    kvision train dcgan --conditional --discriminator auxiliary --balance-classes

Fashion-MNIST is found locally as in fashion_mnist.py. The generator is
judged with a classifier trained on the same data by kvision's
classification recipe (default: the VGG-style ``cnn`` that ``kvision train
fashion_mnist --preset classic`` leaves in runs/fashion_mnist_cnn): the Fréchet distance between its
penultimate-layer features of real test images and of samples ("FID computed
with a Fashion-MNIST classifier", not comparable to Inception FID), and, for
a conditional generator, the share of samples it assigns to the class asked
for. With ``--cas``, the classification accuracy score (Ravuri & Vinyals
2019): the VGG-style CNN trained as ``fashion_mnist.py --preset classic`` trains it, on
``--cas-samples`` class-balanced samples only, tested on the real test split,
beside the same CNN trained on real data (the ``--classifier``, else one
trained here). The EMA generator is exported to <export-dir>/<name>/<version>/
with ``serving_default(noise[, label]) -> images`` (uint8) and a TFLite file;
``python -m kvision.evaluate gan --model <that directory>`` re-scores it.

Outputs: <run-dir>/ (config.json, TensorBoard logs with sample grids,
samples/epoch_NNN.png, checkpoints/generator_ema.keras, history.csv,
evaluation/quality.json) and the export.
"""

import json
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from kvision.data import load_dataset
from kvision.errors import ModelError
from kvision.evaluate.cas import EPOCHS as CAS_EPOCHS
from kvision.evaluate.cas import classification_accuracy_score
from kvision.evaluate.frechet import default_classifier_path, generator_quality, load_classifier
from kvision.export.tflite import check_generator_variants, parse_variants
from kvision.models import build
from kvision.models.gan import CONDITIONINGS, FAKE_LABELS, LOSSES, to_uint8
from kvision.recipes.common import (add_data_arguments, add_export_arguments, add_run_arguments, add_speed_arguments,
                                    announce_model, check_export_arguments, export_for_generator, finish,
                                    open_recipe_run, recipe_parser, run_recipe, tensorboard_options,
                                    training_command)
from kvision.train import get_strategy, is_chief, worker_dir
from kvision.train.gan import fit_gan, image_grid


def build_parser():
    parser = recipe_parser(__doc__)
    add_data_arguments(parser, "fashion_mnist, mnist, cifar10 or cifar100")

    model = parser.add_argument_group("model")
    model.add_argument("--conditional", action="store_true", help="condition both networks on the class label")
    model.add_argument("--latent-dim", type=int, default=100, help="size of the noise vector")
    model.add_argument("--generator-filters", type=int, default=128, help="generator channels at the smallest scale")
    model.add_argument("--discriminator-filters", type=int, default=64, help="discriminator channels of the first conv")
    model.add_argument("--dropout", type=float, default=0.3, help="discriminator dropout")
    model.add_argument("--spectral-norm", action="store_true",
                       help="spectral normalisation of every discriminator kernel (the projection's class embedding too)")
    model.add_argument("--discriminator", choices=CONDITIONINGS, default="concat",
                       help="how a conditional discriminator takes the label: concat (an extra input channel), "
                            "projection (inner product of a class embedding with its features, Miyato & Koyama) "
                            "or auxiliary (no label input; a class-predicting head, ACGAN)")

    train = parser.add_argument_group("training")
    train.add_argument("--epochs", type=int, default=15, help="passes over the training images")
    train.add_argument("--batch-size", type=int, default=128, help="per replica")
    train.add_argument("--loss", choices=LOSSES, default="bce", help="non-saturating BCE or hinge")
    train.add_argument("--d-lr", type=float, default=2e-4, help="discriminator Adam learning rate")
    train.add_argument("--g-lr", type=float, default=2e-4, help="generator Adam learning rate")
    train.add_argument("--beta1", type=float, default=0.5, help="Adam beta_1 of both networks")
    train.add_argument("--beta2", type=float, default=0.999, help="Adam beta_2 of both networks")
    train.add_argument("--fake-labels", choices=FAKE_LABELS, default="batch",
                       help="classes asked of a conditional generator: the real batch's, or balanced (every class "
                            "equally often in each batch)")
    train.add_argument("--balance-classes", action="store_true",
                       help="real batches hold every class equally often (classes taken in turn)")
    train.add_argument("--d-steps", type=int, default=1, help="discriminator steps per generator step")
    train.add_argument("--ema-decay", type=float, default=0.999, help="generator weight average decay per step")
    train.add_argument("--flip", action="store_true", help="random horizontal flips of the real images")
    add_speed_arguments(parser)

    quality = parser.add_argument_group("evaluation")
    quality.add_argument("--classifier", help="a .keras classifier of the same dataset for the Fréchet distance "
                         "(default: runs/<dataset>_cnn/checkpoints/best.keras, from the classification recipe)")
    quality.add_argument("--fid-samples", type=int, default=10_000, help="generated and real images compared")
    quality.add_argument("--cas", action="store_true", help="classification accuracy score of a conditional generator "
                         "(trains the default CNN on samples, and on real data without --classifier)")
    quality.add_argument("--cas-samples", type=int, default=60_000,
                         help="class-balanced generated training images for CAS")
    quality.add_argument("--cas-epochs", type=int, default=CAS_EPOCHS,
                         help="epochs of the CAS classifiers, as fashion_mnist.py --preset classic")

    run = parser.add_argument_group("run")
    run.add_argument("--seed", type=int, default=0, help="seeds weights, noise and shuffling")
    run.add_argument("--run-dir", help="logs, samples, checkpoints (default: runs/<dataset>_dcgan[_conditional])")
    run.add_argument("--name", help="served model name (default: <dataset>_dcgan[_conditional])")
    add_run_arguments(run)
    add_export_arguments(parser, classifier=False)
    return parser


def find_classifier(args, dataset):
    """The feature classifier of ``--classifier`` or the default path, or None when there is none."""
    path = Path(args.classifier or default_classifier_path(args.dataset))
    if not path.is_file() and not args.classifier:
        print(f"note: no classifier at {path}; train one with `kvision train classification --dataset "
              f"{args.dataset} --model cnn` (or pass --classifier) to get the Fréchet distance")
        return None
    return load_classifier(path, dataset.image_shape, dataset.num_classes)


def run(args, *, rules):
    """Train, measure and export for parsed ``args``; ``rules`` from ``run_recipe``."""
    check_export_arguments(args)
    check_generator_variants(parse_variants(args.tflite))  # before training, not after
    if args.cas and not args.conditional:
        raise ModelError("--cas measures a conditional generator. Received: --cas without --conditional")
    strategy = get_strategy()  # first: a multi-worker strategy must exist before TensorFlow runs any op
    dataset = load_dataset(args.dataset, args.data_dir, download=not args.no_download)
    num_classes = dataset.num_classes if args.conditional else None

    def generator_fn():
        return build("dcgan_generator", dataset.image_shape, num_classes, latent_dim=args.latent_dim,
                     filters=args.generator_filters)

    def discriminator_fn():
        return build("dcgan_discriminator", dataset.image_shape, num_classes, filters=args.discriminator_filters,
                     dropout=args.dropout, spectral_norm=args.spectral_norm, conditioning=args.discriminator)

    # Fail on an image size the networks cannot take, before any output.
    announce_model("dcgan_generator", generator_fn())
    announce_model("dcgan_discriminator", discriminator_fn())
    classifier = find_classifier(args, dataset)
    kind = f"dcgan{'_conditional' if args.conditional else ''}"
    name = args.name = args.name or f"{args.dataset}_{kind}"  # recorded: `kvision runs` finds the export
    run_dir = Path(args.run_dir or f"runs/{args.dataset}_{kind}")
    open_recipe_run(run_dir, args, rules, strategy=strategy)
    print(f"data: {dataset.name} from {dataset.origin}: {len(dataset.train[0])} train images {dataset.image_shape}")

    start = time.time()
    result = fit_gan(
        generator_fn, discriminator_fn, dataset.train, run_dir=run_dir, epochs=args.epochs,
        batch_size=args.batch_size, loss=args.loss, d_learning_rate=args.d_lr, g_learning_rate=args.g_lr,
        beta_1=args.beta1, beta_2=args.beta2, d_steps=args.d_steps, ema_decay=args.ema_decay,
        fake_labels=args.fake_labels, balance_classes=args.balance_classes, flip=args.flip, seed=args.seed,
        mixed_precision=args.mixed_precision, xla=args.xla, strategy=strategy, **tensorboard_options(args),
    )
    train_seconds = time.time() - start
    generator = result.gan.ema_generator

    def sample(noise, labels):
        return to_uint8(generator.predict(result.gan.sample_inputs(noise, labels), batch_size=500, verbose=0)).numpy()

    quality = {}
    with worker_dir(run_dir) as out_dir:  # every worker samples (collective predict); the chief's files are kept
        if classifier is not None:
            quality.update(generator_quality(
                sample, classifier, dataset.test[0], num_samples=args.fid_samples, num_classes=num_classes,
                seed=args.seed, latent_dim=args.latent_dim, bootstrap=10,
            ))
        if args.cas:
            quality.update(classification_accuracy_score(
                sample, dataset.test, num_classes=num_classes, latent_dim=args.latent_dim, real_train=dataset.train,
                real_classifier=classifier, num_samples=args.cas_samples, epochs=args.cas_epochs, seed=args.seed,
                strategy=strategy,
            ))
        if quality:
            (out_dir / "evaluation").mkdir(exist_ok=True)
            (out_dir / "evaluation" / "quality.json").write_text(json.dumps(quality, indent=2))
        labels = np.repeat(np.arange(10) % dataset.num_classes, 10).astype(np.int32) if args.conditional else None
        noise = np.random.default_rng(args.seed).standard_normal((100, args.latent_dim)).astype(np.float32)
        grid = image_grid(sample(noise, labels), columns=10)
        (out_dir / "samples").mkdir(exist_ok=True)
        tf.io.write_file(str(out_dir / "samples" / "final.png"), tf.io.encode_png(grid))

    export = None
    if is_chief():
        export = export_for_generator(
            generator, args, name=name, quality=quality or None, training_command=training_command(),
            dataset={"name": dataset.name, "origin": dataset.origin, "fingerprint": dataset.fingerprint()},
        )
    summary = {
        "model": kind,
        "dataset": dataset.name,
        "epochs": args.epochs,
        "frechet_distance": quality.get("frechet_distance"),
        "class_accuracy": quality.get("class_accuracy"),
        "cas": quality.get("cas"),
        "cas_real_accuracy": quality.get("cas_real_accuracy"),
        "train_seconds": round(train_seconds, 1),
        "run_dir": str(run_dir),
        "samples": str(run_dir / "samples" / "final.png"),
    }
    return finish(summary, export, run_dir=run_dir)


def main(argv=None):
    """Parse ``argv`` and run; errors a user caused print one line."""
    # The evaluation flags measure a finished run; they change no training.
    evaluation = ("classifier", "fid_samples", "cas", "cas_samples", "cas_epochs")
    return run_recipe(run, build_parser(), argv, may_change=evaluation)


if __name__ == "__main__":
    main()
