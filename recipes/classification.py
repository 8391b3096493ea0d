"""Image classification, end to end: data → model → training → evaluation → SavedModel.

The shared body of ``cifar10.py`` and ``fashion_mnist.py``; those scripts only
set their own defaults. It can also be run directly on any supported dataset:

    python recipes/classification.py --dataset mnist --model cnn --epochs 10
    python recipes/classification.py --dataset image_folder --data-dir ~/flowers --image-size 64
    python recipes/classification.py --dataset folder --data-dir ~/photos --image-size 224 --model resnet18 --skip-bad-images
    python recipes/classification.py --dataset mnist --model cnn --adversarial-eps 0.3 --robustness-eps 0 0.1 0.3

Outputs: ``<run-dir>/`` (config.json, TensorBoard logs, checkpoints,
history.csv, evaluation/report.json and PNGs; with ``--robustness-eps``,
evaluation/robustness.json and robustness.png) and
``<export-dir>/<name>/<version>/`` (a verified SavedModel for TF Serving with
warmup requests, TFLite files, evaluation.json, MODEL_CARD.md and BLESSED),
or ``<export-dir>/.rejected/<name>/<version>/`` when a check fails.
"""

import argparse
import contextlib
import sys
import time
from functools import partial
from pathlib import Path

from kvision.data import channel_stats, open_dataset, train_validation_split
from kvision.data.crop import CROPS
from kvision.data.service import check_address
from kvision.data.stream import CROP_SCALE, StreamedDataset, stream_pipeline
from kvision.data.stream_checks import naming_bad_images, sample_arrays, sample_channel_stats, skipped_images
from kvision.errors import DataError
from kvision.evaluate import evaluate_classifier, robustness_report
from kvision.export.cli import add_export_arguments, check_export_arguments, export_for_dataset, finish
from kvision.models import build, get_builder, list_models
from kvision.models.common import is_positive_int, require
from kvision.train import AdversarialTraining, fit_or_load, get_strategy, is_chief, run_paths, worker_dir
from kvision.train.adversarial import check_attack
from kvision.train.cli import add_run_arguments, add_speed_arguments, open_recipe_run, run_recipe, untrained_settings
from kvision.train.engine import OPTIMIZERS
from kvision.train.schedules import SCHEDULES



ROBUSTNESS_STEPS = 20
INCEPTION_MIN_SIZE = 64  # --crop auto: Inception crops for streamed images of at least this side
# Settings a run may be resumed with other values of: evaluation only, or where the same examples come from.
EVALUATION_ONLY = ("robustness_eps", "robustness_examples", "data_service")


def build_parser(description, defaults):
    """The recipe's flags, in groups that mirror the engine's keyword arguments."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", help="in memory: cifar10, cifar100, fashion_mnist, mnist; "
                                        "streamed: folder (or image_folder), tfds:NAME or tfrecord")
    data.add_argument(
        "--data-dir",
        help="a local copy: CIFAR binary/python release (folder or .tar.gz), MNIST-style IDX files, "
        "<class>/ image folders (or train/ and test/ ones), TFRecord shards, TFDS's data_dir; "
        "default: look in the usual places, then TFDS",
    )
    data.add_argument("--no-download", action="store_true", help="never try TFDS downloads")
    data.add_argument("--image-size", type=int, help="the model's N×N input: images are resized (and cropped) to it")
    data.add_argument("--validation-size", type=int,
                      help="training examples held out for validation (in-memory datasets: cifar10, fashion_mnist …)")
    data.add_argument("--validation-share", type=float,
                      help="share of a streamed dataset's training data carved for validation when it has no "
                           "validation split (folder: by a hash of each file's path; tfds: split slicing)")
    data.add_argument("--skip-bad-images", action="store_true",
                      help="streamed: skip images that fail to decode and name them at the end (default: stop)")
    data.add_argument("--data-service", metavar="grpc://HOST:PORT",
                      help="streamed: read, decode and augment the training images on this tf.data service "
                           "(python -m kvision.data.service starts one on 127.0.0.1)")

    model = parser.add_argument_group("model")
    model.add_argument("--model", help=f"one of: {', '.join(list_models('classifier'))}")

    optim = parser.add_argument_group("optimisation")
    optim.add_argument("--epochs", type=int)
    optim.add_argument("--batch-size", type=int, help="per replica; global = this × replicas")
    optim.add_argument("--optimizer", choices=OPTIMIZERS)
    optim.add_argument("--lr", type=float, help="peak learning rate")
    optim.add_argument("--momentum", type=float)
    optim.add_argument("--weight-decay", type=float, help="L2 coefficient (decoupled for adamw)")
    optim.add_argument("--schedule", choices=SCHEDULES)
    optim.add_argument("--warmup-epochs", type=float)
    optim.add_argument("--label-smoothing", type=float)
    optim.add_argument("--early-stopping", type=int, metavar="PATIENCE", help="stop after PATIENCE epochs without improvement")

    augment = parser.add_argument_group("augmentation")
    augment.add_argument("--crop", choices=("auto", *CROPS),
                         help="pad: pad-and-random-crop, whole images at evaluation; inception (streamed only): "
                              "random-resized crops, central 87.5%% at evaluation and export; "
                              f"auto: inception for streamed data at {INCEPTION_MIN_SIZE}+ px, else pad")
    augment.add_argument("--crop-scale", type=float, nargs=2, metavar=("MIN", "MAX"),
                         help="area fraction of an inception training crop")
    augment.add_argument("--crop-padding", type=int, help="pad-and-random-crop padding, pixels (0: off)")
    augment.add_argument("--no-flip", dest="flip", action="store_false", help="no horizontal flips")
    augment.add_argument("--cutout", type=int, help="side of a random erased square, pixels (0: off)")

    adversarial = parser.add_argument_group("adversarial (EPS is a fraction of the 0..255 range: 0.1 = 25.5 levels)")
    adversarial.add_argument("--adversarial-eps", type=float, metavar="EPS",
                             help="train on PGD examples within this L∞ radius (Madry et al.); default: off")
    adversarial.add_argument("--adversarial-steps", type=int, help="PGD steps per training batch")
    adversarial.add_argument("--adversarial-step-size", type=float, help="PGD step (default: 2.5·EPS/steps)")
    adversarial.add_argument("--robustness-eps", type=float, nargs="+", metavar="EPS",
                             help=f"after evaluation: test accuracy under FGSM and PGD-{ROBUSTNESS_STEPS} at each EPS")
    adversarial.add_argument("--robustness-examples", type=int, help="test images attacked (the first N)")

    add_speed_arguments(parser)

    run = parser.add_argument_group("run and export")
    run.add_argument("--seed", type=int, help="seeds weights, shuffling and augmentation")
    run.add_argument("--run-dir", help="logs, checkpoints, report; a killed run resumes from here (default: runs/<dataset>_<model>)")
    run.add_argument("--name", help="served model name (default: <dataset>_<model>)")
    add_run_arguments(run)
    add_export_arguments(parser)
    parser.set_defaults(
        **{
            "validation_size": 5000,
            "validation_share": 0.05,
            "epochs": 30,
            "batch_size": 128,
            "optimizer": "sgd",
            "lr": 0.1,
            "weight_decay": 5e-4,
            "momentum": 0.9,
            "schedule": "cosine",
            "warmup_epochs": 0.0,
            "label_smoothing": 0.0,
            "crop": "auto",
            "crop_scale": list(CROP_SCALE),
            "crop_padding": 4,
            "cutout": 0,
            "seed": 0,
            "adversarial_steps": 7,
            "robustness_examples": 1000,
            **defaults,
        }
    )
    return parser


def check_adversarial_arguments(args):
    """``ModelError`` for a bad attack flag, before any data is loaded or output written."""
    if args.adversarial_eps is not None:
        check_attack(args.adversarial_eps, args.adversarial_steps, args.adversarial_step_size)
    for epsilon in args.robustness_eps or ():
        check_attack(epsilon, ROBUSTNESS_STEPS, None)
    require(is_positive_int(args.robustness_examples), "--robustness-examples must be a positive integer.",
            robustness_examples=args.robustness_examples)


def open_data(args):
    """The dataset ``args`` name: in memory (``ImageDataset``) or streamed (``StreamedDataset``)."""
    return open_dataset(args.dataset, args.data_dir, download=not args.no_download, image_size=args.image_size,
                        validation=args.validation_share, seed=args.seed)


def resolve_crop(args, streamed, image_shape):
    """The crop mode (``kvision.data.crop.CROPS``) of ``args.crop``: "auto" is inception for large streamed images."""
    if args.crop == "auto":
        return "inception" if streamed and min(image_shape[:2]) >= INCEPTION_MIN_SIZE else "pad"
    require(streamed or args.crop == "pad", "--crop inception needs a streamed dataset (folder, tfds:NAME, tfrecord).",
            crop=args.crop, dataset=args.dataset)
    return args.crop


def streamed_inputs(dataset, args):
    """``(image_shape, train, validation, test, mean, std)`` of a ``StreamedDataset``; the statistics' sample is read here.

    So an unreadable image among it fails before anything is written to the run directory.
    """
    size = (args.image_size,) * 2 if args.image_size else dataset.image_size
    if size is None:
        raise DataError(f"{dataset.origin}: images of several sizes need --image-size. Received: none")
    image_shape = (*size, dataset.channels)
    build(args.model, image_shape, dataset.num_classes)  # fail on a shape it cannot take, before reading images
    train = dataset.splits["train"]
    with naming_bad_images([train], dataset.channels):
        mean, std = sample_channel_stats(train, image_shape, crop=resolve_crop(args, True, image_shape),
                                         skip_bad_images=args.skip_bad_images, seed=args.seed)
    return image_shape, train, dataset.splits.get("validation"), dataset.splits["test"], mean, std


def run(args, *, may_change):
    """Run the five steps for parsed ``args``; returns the summary dict it prints.

    ``may_change``: the settings a run directory may be resumed with other values of (``untrained_settings``).
    Data are opened and read (a streamed one: a sample of its training images) before the run directory is.
    """
    get_builder(args.model, "classifier")  # fail on an unknown name or export flag before loading any data
    check_export_arguments(args)
    check_adversarial_arguments(args)
    if args.data_service:
        check_address(args.data_service)
    strategy = get_strategy()  # first: a multi-worker strategy must exist before TensorFlow runs any op
    dataset = open_data(args)
    streamed = isinstance(dataset, StreamedDataset)
    if args.data_service and not streamed:
        raise DataError(f"--data-service needs a streamed dataset (folder, tfrecord, tfds:NAME); {args.dataset} is "
                        f"held in memory. Received: --dataset {args.dataset}")
    if streamed:
        image_shape, train, validation, test, mean, std = streamed_inputs(dataset, args)
        counts = dataset.counts()
    else:
        image_shape = dataset.image_shape
        build(args.model, image_shape, dataset.num_classes)  # fail on a shape it cannot take, before any output
        train, validation = train_validation_split(*dataset.train, args.validation_size, seed=args.seed)
        validation = validation if len(validation[0]) else None
        test = dataset.test
        mean, std = channel_stats(train[0])
        counts = {"train": len(train[0]), "validation": len(validation[0]) if validation else 0, "test": len(test[0])}
    crop = args.crop = resolve_crop(args, streamed, image_shape)  # config.json records the crop the model sees
    print(f"data: {dataset.name} from {dataset.origin}: "
          + ", ".join(f"{counts.get(split, 0)} {split}" for split in ("train", "validation", "test"))
          + f", {image_shape}, {crop} crops")

    default_name = f"{args.dataset}_{args.model}".replace(":", "_").replace("/", "_")  # tfds:NAME/config
    name = args.name or default_name
    run_dir = Path(args.run_dir or f"runs/{default_name}")
    open_recipe_run(run_dir, args, may_change)

    wrap = None
    if args.adversarial_eps is not None:
        wrap = partial(AdversarialTraining, epsilon=args.adversarial_eps, steps=args.adversarial_steps,
                       step_size=args.adversarial_step_size)
    stream_options = dict(crop=crop, skip_bad_images=args.skip_bad_images) if streamed else {}
    start = time.time()
    result = fit_or_load(  # a finished training is loaded: a re-run after a failed export exports again
        lambda: build(args.model, image_shape, dataset.num_classes, mean=mean, std=std),
        train,
        validation,
        run_dir=run_dir,
        epochs=args.epochs,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        learning_rate=args.lr,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        schedule=args.schedule,
        warmup_epochs=args.warmup_epochs,
        label_smoothing=args.label_smoothing,
        crop_padding=args.crop_padding,
        flip=args.flip,
        cutout=args.cutout,
        seed=args.seed,
        mixed_precision=args.mixed_precision,
        xla=args.xla,
        early_stopping_patience=args.early_stopping,
        strategy=strategy,
        wrap=wrap,
        **({"crop_scale": tuple(args.crop_scale), "data_service": args.data_service, **stream_options}
           if streamed else {}),
    )
    train_seconds = time.time() - start

    with worker_dir(run_dir) as out_dir:  # every worker evaluates; the chief's files are kept
        paths = run_paths(out_dir)
        test_input, naming = test, contextlib.nullcontext()
        if streamed:  # batch by batch over the whole test split
            batches = stream_pipeline(test, image_shape=image_shape, batch_size=256, training=False, **stream_options)
            test_input, naming = (batches, None), naming_bad_images([test], dataset.channels)
        with naming:
            report = evaluate_classifier(
                result.model, *test_input, dataset.class_names, out_dir / "evaluation",
                history_csv=paths["history"], log_dir=paths["logs"],
            )
    export = robustness = None
    if is_chief():
        if args.robustness_eps:
            attacked = (sample_arrays(test, image_shape, args.robustness_examples, seed=None, **stream_options)
                        if streamed else [split[: args.robustness_examples] for split in test])
            robustness = robustness_report(result.model, *attacked, epsilons=args.robustness_eps,
                                           steps=ROBUSTNESS_STEPS, out_dir=run_dir / "evaluation")
        export = export_for_dataset(
            result.model, dataset, args, name=name, seed=args.seed,
            metrics={k: v for k, v in report.items() if k in ("top5_accuracy", "macro_f1")},
            training_command=" ".join(sys.argv), **stream_options,
        )
    summary = {
        "model": args.model,
        "dataset": dataset.name,
        "crop": crop,
        "test_accuracy": report["accuracy"],
        "test_top5_accuracy": report.get("top5_accuracy"),
        "train_seconds": round(train_seconds, 1),
        "run_dir": str(run_dir),
        "report": str(run_dir / "evaluation" / "report.json"),
    }
    if robustness:
        epsilons = [f"{epsilon:g}" for epsilon in robustness["epsilons"]]
        summary["robustness"] = {
            "examples": robustness["num_examples"],
            "fgsm_accuracy": dict(zip(epsilons, robustness["fgsm_accuracy"])),
            "pgd_accuracy": dict(zip(epsilons, robustness["pgd_accuracy"])),
            "report": str(run_dir / "evaluation" / "robustness.json"),
        }
    if streamed and args.skip_bad_images:
        summary["skipped_images"] = report_skipped(dataset)
    return finish(summary, export)


def report_skipped(dataset):
    """The images of ``dataset`` that failed to decode and were skipped, per split; says how many on stdout."""
    skipped = skipped_images(dataset.splits, dataset.channels)
    total = sum(split["count"] for split in skipped.values())
    first = [name for split in skipped.values() for name in split["first"]]
    print(f"skipped {total} image(s) that failed to decode" + (f", first: {'; '.join(first)}" if total else ""))
    return skipped


def main(argv=None, *, description=__doc__, **defaults):
    """Parse ``argv`` with the given recipe defaults and run; errors a user caused print one line."""
    parser = build_parser(description, defaults)
    args = parser.parse_args(argv)
    if args.dataset is None or args.model is None:
        parser.error("--dataset and --model are required")
    return run_recipe(partial(run, may_change=untrained_settings(parser, *EVALUATION_ONLY)), args)


if __name__ == "__main__":
    main()
