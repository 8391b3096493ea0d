"""Image classification, end to end: data → model → training → evaluation → SavedModel.

The shared body of ``cifar10.py`` and ``fashion_mnist.py``; those scripts only
set their own defaults. It can also be run directly on any supported dataset:

    kvision train classification --dataset mnist --model cnn --epochs 10
    kvision train classification --dataset image_folder --data-dir ~/flowers --image-size 64
    kvision train classification --dataset folder --data-dir ~/photos --image-size 224 --model resnet18 --skip-bad-images
    kvision train classification --dataset mnist --model cnn --adversarial-eps 0.3 --robustness-eps 0 0.1 0.3

(``python recipes/classification.py …`` in the repository runs the same.)

Outputs: ``<run-dir>/`` (config.json, TensorBoard logs, checkpoints,
history.csv, evaluation/report.json and PNGs; with ``--robustness-eps``,
evaluation/robustness.json and robustness.png) and
``<export-dir>/<name>/<version>/`` (a verified SavedModel for TF Serving with
warmup requests, TFLite files, evaluation.json, MODEL_CARD.md and BLESSED),
or ``<export-dir>/.rejected/<name>/<version>/`` when a check fails.
"""

import contextlib
import dataclasses
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
from kvision.models import build, get_builder, list_models
from kvision.models.common import flip_averaged, is_positive_int, require
from kvision.recipes.common import (add_export_arguments, add_preset_argument, add_run_arguments, add_speed_arguments,
                                    announce_model, check_export_arguments, export_for_dataset, finish, open_recipe_run,
                                    probability, recipe_parser, run_recipe, tensorboard_options, training_command)
from kvision.train import AdversarialTraining, fit_or_load, get_strategy, is_chief, run_paths, worker_dir
from kvision.train.adversarial import check_attack
from kvision.train.engine import OPTIMIZERS, float32_twin
from kvision.train.schedules import SCHEDULES

ROBUSTNESS_STEPS = 20
INCEPTION_MIN_SIZE = 64  # --crop auto: Inception crops for streamed images of at least this side
# Settings a run may be resumed with other values of: evaluation only, or where the same examples come from.
EVALUATION_ONLY = ("robustness_eps", "robustness_examples", "data_service", "tta")
TTA = ("none", "flip")


def build_parser(description, defaults, presets=None):
    """The recipe's flags, in groups that mirror the engine's keyword arguments.

    ``defaults`` (flag name → value) are the recipe's; ``presets`` (name →
    such a dict, the first one's name being the defaults') add ``--preset``.
    """
    parser = recipe_parser(description)
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
    data.add_argument("--validation-size", type=int,
                      help="training examples held out for validation (in-memory datasets: cifar10, fashion_mnist …)")
    add_stream_arguments(data)

    model = parser.add_argument_group("model")
    model.add_argument("--model", help=f"one of: {', '.join(list_models('classifier'))}")

    optim = parser.add_argument_group("optimisation")
    optim.add_argument("--epochs", type=int, help="passes over the training split")
    optim.add_argument("--batch-size", type=int, help="per replica; global = this × replicas")
    optim.add_argument("--optimizer", choices=OPTIMIZERS, help="the optimizer")
    optim.add_argument("--lr", type=float, help="peak learning rate")
    optim.add_argument("--momentum", type=float, help="SGD momentum")
    optim.add_argument("--weight-decay", type=float, help="L2 coefficient (decoupled for adamw)")
    optim.add_argument("--schedule", choices=SCHEDULES, help="learning-rate schedule")
    optim.add_argument("--warmup-epochs", type=float, help="linear warm-up to the peak rate, in epochs")
    optim.add_argument("--label-smoothing", type=float, help="epsilon of the cross-entropy's label smoothing")
    optim.add_argument("--early-stopping", type=int, metavar="PATIENCE", help="stop after PATIENCE epochs without improvement")

    augment = parser.add_argument_group("augmentation")
    add_crop_arguments(augment)
    augment.add_argument("--crop-padding", type=int, help="pad-and-random-crop padding, pixels (0: off)")
    augment.add_argument("--no-flip", dest="flip", action="store_false", help="no horizontal flips")
    augment.add_argument("--cutout", type=int, help="side of a random erased square, pixels (0: off)")
    augment.add_argument("--random-erasing", type=probability, metavar="P",
                         help="probability that a training image has a random rectangle (2-40%% of its area) replaced "
                              "by noise (Zhong et al.; the paper uses 0.5; 0: off)")
    augment.add_argument("--tta", choices=TTA,
                         help="test-time augmentation of the evaluated and exported model; flip: the mean of the "
                              "logits of each image and its mirror (one model, two forward passes per image)")

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
            "epochs": 30,
            "batch_size": 128,
            "optimizer": "sgd",
            "lr": 0.1,
            "weight_decay": 5e-4,
            "momentum": 0.9,
            "schedule": "cosine",
            "warmup_epochs": 0.0,
            "label_smoothing": 0.0,
            "crop_padding": 4,
            "cutout": 0,
            "random_erasing": 0.0,
            "tta": "none",
            "seed": 0,
            "adversarial_steps": 7,
            "robustness_examples": 1000,
            **defaults,
        }
    )
    if presets:
        add_preset_argument(parser, presets, default=next(iter(presets)))
    return parser


def add_stream_arguments(data):
    """The flags of streamed datasets, in a recipe's "data" group: image size, validation share, bad images, service."""
    data.add_argument("--image-size", type=int, help="the model's N×N input: images are resized (and cropped) to it")
    data.add_argument("--validation-share", type=float, default=0.05,
                      help="share of a streamed dataset's training data carved for validation when it has no "
                           "validation split (folder: by a hash of each file's path; tfds: split slicing)")
    data.add_argument("--skip-bad-images", action="store_true",
                      help="streamed: skip images that fail to decode and name them at the end (without it: stop)")
    data.add_argument("--data-service", metavar="grpc://HOST:PORT",
                      help="streamed: read, decode and augment the training images on this tf.data service "
                           "(python -m kvision.data.service starts one on 127.0.0.1)")


def add_crop_arguments(augment):
    """``--crop`` and ``--crop-scale``, in a recipe's "augmentation" group."""
    augment.add_argument("--crop", choices=("auto", *CROPS), default="auto",
                         help="pad: pad-and-random-crop, whole images at evaluation; inception (streamed only): "
                              "random-resized crops, central 87.5%% at evaluation and export; "
                              f"auto: inception for streamed data at {INCEPTION_MIN_SIZE}+ px, else pad")
    augment.add_argument("--crop-scale", type=float, nargs=2, metavar=("MIN", "MAX"), default=list(CROP_SCALE),
                         help="area fraction of an inception training crop")


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


def augmentation_summary(args):
    """What augmentation does, in words: ``"pad-4 crops, flips, cutout 8"``, ``"none"``, ``"flips; test-time flip averaging"``."""
    if args.crop == "pad":
        crops = [f"pad-{args.crop_padding} crops"] if args.crop_padding else []
    else:
        crops = [f"{args.crop} crops"]
    cutout, erasing = getattr(args, "cutout", 0), getattr(args, "random_erasing", 0)  # transfer.py has neither
    parts = crops + ["flips"] * bool(args.flip) + [f"cutout {cutout}"] * bool(cutout)
    parts += [f"random erasing p={erasing:g}"] * bool(erasing)
    tested = "; test-time flip averaging" if getattr(args, "tta", "none") == "flip" else ""  # transfer.py has no --tta
    return (", ".join(parts) or "none") + tested


@dataclasses.dataclass
class RecipeData:
    """A recipe's data, opened and checked: the splits (arrays or ``StreamSplit``s), the input shape, the crop."""

    dataset: object  # ImageDataset or StreamedDataset
    image_shape: tuple
    train: object
    validation: object
    test: object
    mean: object  # per-channel statistics of the training images (a bounded sample of a stream)
    std: object
    crop: str
    skip_bad_images: bool = False

    @property
    def streamed(self):
        return isinstance(self.dataset, StreamedDataset)

    @property
    def stream_options(self):
        """``crop`` and ``skip_bad_images`` for everything that reads a stream; nothing for arrays."""
        return dict(crop=self.crop, skip_bad_images=self.skip_bad_images) if self.streamed else {}

    def fit_options(self, args):
        """The stream's keyword arguments of ``fit_classifier`` (augmentation window, service); nothing for arrays."""
        if not self.streamed:
            return {}
        return dict(crop_scale=tuple(args.crop_scale), data_service=args.data_service, **self.stream_options)


def prepare_data(args, check_model):
    """Open and check the data ``args`` name, before anything is written to the run directory.

    ``check_model(image_shape, num_classes)`` raises for a shape the model
    cannot take; it runs before any image is read. A streamed dataset's
    statistics come from a bounded sample of its training images, read here,
    so an unreadable image among them fails now. Prints one line about the data.
    """
    if args.data_service:
        check_address(args.data_service)
    dataset = open_data(args)
    streamed = isinstance(dataset, StreamedDataset)
    if args.data_service and not streamed:
        raise DataError(f"--data-service needs a streamed dataset (folder, tfrecord, tfds:NAME); {args.dataset} is "
                        f"held in memory. Received: --dataset {args.dataset}")
    if streamed:
        size = (args.image_size,) * 2 if args.image_size else dataset.image_size
        if size is None:
            raise DataError(f"{dataset.origin}: images of several sizes need --image-size. Received: none")
        image_shape = (*size, dataset.channels)
        check_model(image_shape, dataset.num_classes)
        crop = resolve_crop(args, True, image_shape)
        train, validation, test = (dataset.splits.get(split) for split in ("train", "validation", "test"))
        with naming_bad_images([train], dataset.channels):
            mean, std = sample_channel_stats(train, image_shape, crop=crop, skip_bad_images=args.skip_bad_images,
                                             seed=args.seed)
        counts = dataset.counts()
    else:
        image_shape = dataset.image_shape
        check_model(image_shape, dataset.num_classes)
        crop = resolve_crop(args, False, image_shape)
        train, validation = train_validation_split(*dataset.train, args.validation_size, seed=args.seed)
        validation = validation if len(validation[0]) else None
        test = dataset.test
        mean, std = channel_stats(train[0])
        counts = {"train": len(train[0]), "validation": len(validation[0]) if validation else 0, "test": len(test[0])}
    args.crop = crop  # config.json records the crop the model sees
    print(f"data: {dataset.name} from {dataset.origin}: "
          + ", ".join(f"{counts.get(split, 0)} {split}" for split in ("train", "validation", "test"))
          + f", {image_shape}; augmentation: {augmentation_summary(args)}")
    return RecipeData(dataset, image_shape, train, validation, test, mean, std, crop,
                      skip_bad_images=streamed and args.skip_bad_images)


def evaluate_test(model, data, run_dir):
    """``evaluate_classifier`` on the whole test split (a stream batch by batch); every worker runs it, the chief's files stay."""
    with worker_dir(run_dir) as out_dir:
        paths = run_paths(out_dir)
        test_input, naming = data.test, contextlib.nullcontext()
        if data.streamed:
            batches = stream_pipeline(data.test, image_shape=data.image_shape, batch_size=256, training=False,
                                      **data.stream_options)
            test_input, naming = (batches, None), naming_bad_images([data.test], data.dataset.channels)
        with naming:
            return evaluate_classifier(model, *test_input, data.dataset.class_names, out_dir / "evaluation",
                                       history_csv=paths["history"], log_dir=paths["logs"])


def export_trained(model, data, args, report, *, name):
    """The verified export of a trained classifier with the export flags of ``args`` (the chief's job)."""
    return export_for_dataset(
        model, data.dataset, args, name=name, seed=args.seed,
        metrics={k: v for k, v in report.items() if k in ("top5_accuracy", "macro_f1")},
        training_command=training_command(), **data.stream_options,
    )


def summarise(data, report, *, run_dir, train_seconds, **fields):
    """The summary a recipe prints: ``fields``, the data, the test figures and where the report is."""
    summary = {
        **fields,
        "dataset": data.dataset.name,
        "crop": data.crop,
        "test_accuracy": report["accuracy"],
        "test_top5_accuracy": report.get("top5_accuracy"),
        "train_seconds": round(train_seconds, 1),
        "run_dir": str(run_dir),
        "report": str(run_dir / "evaluation" / "report.json"),
    }
    if data.skip_bad_images:
        summary["skipped_images"] = report_skipped(data.dataset)
    return summary


def default_name(args, model):
    """``<dataset>_<model>``, safe as a directory name (``tfds:NAME/config``)."""
    return f"{args.dataset}_{model}".replace(":", "_").replace("/", "_")


def run(args, *, rules):
    """Run the five steps for parsed ``args``; returns the summary dict it prints.

    ``rules``: what a resumed run directory may change (``run_recipe``).
    Data are opened and read (a streamed one: a sample of its training images) before the run directory is.
    """
    get_builder(args.model, "classifier")  # fail on an unknown name or export flag before loading any data
    check_export_arguments(args)
    check_adversarial_arguments(args)
    strategy = get_strategy()  # first: a multi-worker strategy must exist before TensorFlow runs any op
    data = prepare_data(args, lambda shape, classes: announce_model(args.model, build(args.model, shape, classes)))
    name = args.name = args.name or default_name(args, args.model)  # recorded: `kvision runs` finds the export
    run_dir = Path(args.run_dir or f"runs/{default_name(args, args.model)}")
    open_recipe_run(run_dir, args, rules, strategy=strategy)

    wrap = None
    if args.adversarial_eps is not None:
        wrap = partial(AdversarialTraining, epsilon=args.adversarial_eps, steps=args.adversarial_steps,
                       step_size=args.adversarial_step_size)
    start = time.time()
    result = fit_or_load(  # a finished training is loaded: a re-run after a failed export exports again
        partial(build, args.model, data.image_shape, data.dataset.num_classes, mean=data.mean, std=data.std),
        data.train,
        data.validation,
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
        random_erasing=args.random_erasing,
        seed=args.seed,
        mixed_precision=args.mixed_precision,
        xla=args.xla,
        early_stopping_patience=args.early_stopping,
        strategy=strategy,
        wrap=wrap,
        class_names=data.dataset.class_names,
        **tensorboard_options(args),
        **data.fit_options(args),
    )
    train_seconds = time.time() - start
    network = float32_twin(result.model)  # after mixed precision: served (and so tested) in float32
    model = flip_averaged(network) if args.tta == "flip" else network  # what is tested is what is served
    report = evaluate_test(model, data, run_dir)
    export = robustness = None
    if is_chief():
        if args.robustness_eps:
            attacked = (sample_arrays(data.test, data.image_shape, args.robustness_examples, seed=None,
                                      **data.stream_options)
                        if data.streamed else [split[: args.robustness_examples] for split in data.test])
            robustness = robustness_report(model, *attacked, epsilons=args.robustness_eps,
                                           steps=ROBUSTNESS_STEPS, out_dir=run_dir / "evaluation")
        export = export_trained(model, data, args, report, name=name)
    summary = summarise(data, report, run_dir=run_dir, train_seconds=train_seconds, model=args.model, tta=args.tta)
    if robustness:
        epsilons = [f"{epsilon:g}" for epsilon in robustness["epsilons"]]
        summary["robustness"] = {
            "examples": robustness["num_examples"],
            "fgsm_accuracy": dict(zip(epsilons, robustness["fgsm_accuracy"])),
            "pgd_accuracy": dict(zip(epsilons, robustness["pgd_accuracy"])),
            "report": str(run_dir / "evaluation" / "robustness.json"),
        }
    return finish(summary, export, run_dir=run_dir)


def report_skipped(dataset):
    """The images of ``dataset`` that failed to decode and were skipped, per split; says how many on stdout."""
    skipped = skipped_images(dataset.splits, dataset.channels)
    total = sum(split["count"] for split in skipped.values())
    first = [name for split in skipped.values() for name in split["first"]]
    print(f"skipped {total} image(s) that failed to decode" + (f", first: {'; '.join(first)}" if total else ""))
    return skipped


def run_checked(args, *, rules):
    """``run``, once ``--dataset`` and ``--model`` are known (this recipe has no defaults for them)."""
    if args.dataset is None or args.model is None:
        raise DataError("Expected --dataset and --model (or a --config naming them). "
                        f"Received: --dataset {args.dataset}, --model {args.model}")
    return run(args, rules=rules)


def main(argv=None, *, description=__doc__, presets=None, **defaults):
    """Parse ``argv`` with the given recipe defaults (and ``presets``) and run; errors a user caused print one line."""
    return run_recipe(run_checked, build_parser(description, defaults, presets), argv, may_change=EVALUATION_ONLY)


if __name__ == "__main__":
    main()
