"""``python -m kvision.export``: export any saved classifier apart from training; flags shared with recipes.

    python -m kvision.export runs/fashion_mnist_cnn --name fashion_mnist_cnn
    python -m kvision.export model.keras --name flowers --dataset image_folder --data-dir ~/flowers \\
        --tflite float32,float16,int8 --bless-min-accuracy 0.9

MODEL_PATH is a ``.keras`` file or a run directory (its
``checkpoints/best.keras``, else ``last.keras``, else a GAN run's
``generator_ema.keras``); the dataset defaults to the one in the run's
``config.json``. For a classifier, the evaluation split drives the warmup
requests, parity checks and accuracy, and a sample of the training split
calibrates int8. A GAN generator (input ``noise``) is exported with
``export_generator``, and so is a VAE's decoder (a VAE run's checkpoints
hold the whole VAE); the run's ``evaluation/quality.json`` gives the metrics.
A seq2seq model or an image captioner is exported by re-running its recipe
with the same run directory (it needs the vocabularies and test split the
recipe builds).

    python -m kvision.export runs/fashion_mnist_dcgan_conditional --name fashion_mnist_dcgan_conditional --tflite float32
"""

import argparse
import json
from pathlib import Path

import numpy as np

import kvision.models
from kvision.data import open_dataset
from kvision.data.crop import EVAL_CROPS
from kvision.data.decode import ImageLimits
from kvision.data.stream import StreamedDataset
from kvision.data.stream_checks import sample_arrays
from kvision.errors import ExportError, exit_on_error
from kvision.export.exporters import export_captioner, export_classifier, export_generator, export_translator
from kvision.export.onnx_export import ONNX_INSTALL, require_onnx
from kvision.export.tflite import INT8_IO_TYPES, VARIANTS, parse_variants
from kvision.saving import load_model

REPRESENTATIVE_IMAGES = 300
EVALUATION_IMAGES = 10_000  # test images of a streamed dataset the export evaluates and checks
EVALUATION_BYTES = 2**30  # … at most this much uint8 pixel data


CLASSIFIER_TFLITE = "float32,int8"
GENERATOR_TFLITE = "float32"


def add_export_arguments(parser, *, classifier=True, model_dependent=False, tflite=True, images=None):
    """The export flags, as a group of ``parser``; recipes and the CLI share them.

    ``classifier=False`` leaves out the classifier-only flags (int8, accuracy
    bar), for generators; ``tflite=False`` leaves out ``--tflite``, for
    seq2seq models (exported as SavedModels only); ``images`` (default:
    ``classifier``) adds the budgets of the encoded images the exported
    signatures accept (``--max-image-pixels`` …). ``--tflite`` defaults to
    ``float32,int8`` for classifiers and ``float32`` for generators; with
    ``model_dependent`` (the CLI, which learns the kind of model later) it is
    left None until then.
    """
    group = parser.add_argument_group("export")
    group.add_argument("--export-dir", default="saved_models", help="serving base directory; versions go to <dir>/<name>/<version>")
    group.add_argument("--version", type=int, help="export version (default: Unix time); an existing one is never overwritten")
    variants = VARIANTS if classifier else tuple(v for v in VARIANTS if v != "int8")
    default = None if model_dependent else CLASSIFIER_TFLITE if classifier else GENERATOR_TFLITE
    shown = f"{CLASSIFIER_TFLITE} for classifiers, {GENERATOR_TFLITE} for generators" if model_dependent else default
    if tflite:
        group.add_argument("--tflite", default=default,
                           help=f"comma-separated TFLite variants among {','.join(variants)} ('' for none; default: {shown})")
        group.add_argument("--onnx", action="store_true",
                           help=f"also write model.onnx, checked with ONNX Runtime against Keras before blessing "
                                f"(needs: {ONNX_INSTALL})")
    if classifier:
        group.add_argument("--int8-io", default="uint8", choices=INT8_IO_TYPES, help="input/output type of the int8 TFLite model")
        group.add_argument("--allow-select-ops", action="store_true", help="let TFLite files use Select TF ops (needs the Flex delegate)")
        group.add_argument("--bless-min-accuracy", type=float, help="bless only if test accuracy reaches this (0..1)")
    if classifier if images is None else images:
        limits = ImageLimits()
        group.add_argument("--max-image-pixels", type=positive_int, default=limits.max_pixels,
                           help="largest height × width a signature decodes, read from the image's header first")
        group.add_argument("--max-image-bytes", type=positive_int, default=limits.max_bytes,
                           help="largest encoded image a signature accepts, in bytes")
        group.add_argument("--max-batch-size", type=positive_int, default=limits.max_batch,
                           help="most images in one serving request")
    group.add_argument("--push-unblessed", dest="push_only_if_blessed", action="store_false",
                       help="publish a version even if it fails its checks (default: move it to <dir>/.rejected/)")
    group.add_argument("--keep-versions", type=int, default=2, help="versions the written models.config serves")
    return group


def positive_int(text):
    """argparse type: an integer ≥ 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer. Received: {text}")
    return value


def image_limits(args):
    """The ``ImageLimits`` of ``args``' export flags."""
    return ImageLimits(args.max_image_pixels, args.max_image_bytes, args.max_batch_size)


def check_export_arguments(args):
    """Fail on bad export flags before any training or loading happens."""
    if getattr(args, "tflite", None) is not None:  # None: the CLI's default, resolved once the model is known
        parse_variants(args.tflite)
    if getattr(args, "onnx", False):
        require_onnx()
    if args.keep_versions < 1:
        raise ExportError(f"--keep-versions must be at least 1. Received: {args.keep_versions}")
    if getattr(args, "bless_min_accuracy", None) is not None and not 0 <= args.bless_min_accuracy <= 1:
        raise ExportError(f"--bless-min-accuracy is a fraction in [0, 1]. Received: {args.bless_min_accuracy}")
    if args.version is not None and args.version < 0:
        raise ExportError(f"--version must be a non-negative integer. Received: {args.version}")


def export_for_dataset(model, dataset, args, *, name, metrics=None, training_command=None, seed=0, crop="pad",
                       skip_bad_images=False):
    """``export_classifier`` on ``dataset``'s test split with the export flags in ``args``.

    For a ``StreamedDataset`` (``crop``: the model's crop mode), the test
    split's accuracy and parity figures come from a seeded sample of up to
    ``EVALUATION_IMAGES`` test images (fewer when they would pass
    ``EVALUATION_BYTES``), seen as evaluation sees them; evaluation.json
    records the sample's size.
    """
    provenance = {"name": dataset.name, "origin": dataset.origin}
    if isinstance(dataset, StreamedDataset):
        image_shape = tuple(model.input_shape[1:])
        options = dict(crop=crop, skip_bad_images=skip_bad_images, seed=seed)
        count = max(9, min(EVALUATION_IMAGES, EVALUATION_BYTES // int(np.prod(image_shape))))
        eval_images, eval_labels = sample_arrays(dataset.splits["test"], image_shape, count, **options)
        representative = sample_arrays(dataset.splits["train"], image_shape, REPRESENTATIVE_IMAGES, **options)[0]
        provenance.update(fingerprint=dataset.fingerprint, test_examples=dataset.splits["test"].count,
                          evaluation_sample=len(eval_labels))
    else:
        (eval_images, eval_labels), train_images = dataset.test, dataset.train[0]
        rng = np.random.default_rng(seed)
        sample = rng.choice(len(train_images), size=min(REPRESENTATIVE_IMAGES, len(train_images)), replace=False)
        representative = train_images[np.sort(sample)]
        provenance.update(fingerprint=dataset.fingerprint())
    return export_classifier(
        model,
        args.export_dir,
        name,
        class_names=dataset.class_names,
        eval_images=eval_images,
        eval_labels=eval_labels,
        representative_images=representative,
        version=args.version,
        tflite=tflite_variants(args, CLASSIFIER_TFLITE),
        onnx=args.onnx,
        int8_io=args.int8_io,
        allow_select_ops=args.allow_select_ops,
        bless_min_accuracy=args.bless_min_accuracy,
        limits=image_limits(args),
        push_only_if_blessed=args.push_only_if_blessed,
        keep_versions=args.keep_versions,
        metrics=metrics,
        training_command=training_command,
        dataset=provenance,
        eval_crop=EVAL_CROPS[crop],
    )


def refuse_unpushed(result):
    """Raise ``ExportError`` naming the failed checks when ``result`` was not pushed."""
    if not result.pushed:
        failed = "; ".join(f"{c.name} = {c.value:.4g} (bar {c.op} {c.bar:g})" for c in result.failed_checks)
        raise ExportError(f"Version {result.version} is NOT_BLESSED and was not pushed; kept at {result.path}. Failed: {failed}")


def finish(summary, export):
    """Print a recipe's ``summary`` (with where ``export`` went) as JSON; then refuse an unpushed export."""
    summary.update(saved_model=str(export.path) if export else None, blessed=export.blessed if export else None)
    print(json.dumps(summary, indent=2))
    if export:
        refuse_unpushed(export)
    return summary


def tflite_variants(args, default):
    """The --tflite variants; ``default`` when the flag was left at the CLI's model-dependent default."""
    return parse_variants(default if args.tflite is None else args.tflite)


GENERATOR_METRICS = ("frechet_distance", "frechet_distance_std", "class_accuracy", "num_samples", "seed", "cas",
                     "cas_real_accuracy", "cas_gap", "cas_samples", "cas_epochs", "elbo")


def export_for_generator(generator, args, *, name, quality=None, training_command=None, dataset=None):
    """``export_generator`` with the export flags in ``args``; ``quality`` from the GAN or VAE recipe.

    evaluation.json's metrics keep the quality figures and the sample count
    and seed they were measured with (``GENERATOR_METRICS``), so
    ``python -m kvision.evaluate gan`` re-scores the served model alike.
    """
    return export_generator(
        generator, args.export_dir, name, tflite=tflite_variants(args, GENERATOR_TFLITE), onnx=args.onnx,
        version=args.version,
        push_only_if_blessed=args.push_only_if_blessed, keep_versions=args.keep_versions,
        metrics={k: quality[k] for k in GENERATOR_METRICS if k in (quality or {})},
        training_command=training_command, dataset=dataset,
    )


def export_for_translator(translator, args, *, name, sources, report, training_command=None, dataset=None):
    """``export_translator`` with the export flags in ``args``; ``report`` from ``evaluate_seq2seq``."""
    return export_translator(
        translator, args.export_dir, name, sources, max_word_error_rate=args.bless_max_wer, version=args.version,
        push_only_if_blessed=args.push_only_if_blessed, keep_versions=args.keep_versions,
        metrics={k: report[k] for k in ("word_error_rate", "token_error_rate", "bleu", "token_accuracy")},
        training_command=training_command, dataset=dataset,
    )


def export_for_captioner(captioner, args, *, name, images, report, training_command=None, dataset=None):
    """``export_captioner`` with the export flags in ``args``; ``report`` from ``evaluate_captioner``."""
    return export_captioner(
        captioner, args.export_dir, name, images, min_bleu_4=args.bless_min_bleu_4, limits=image_limits(args),
        version=args.version,
        push_only_if_blessed=args.push_only_if_blessed, keep_versions=args.keep_versions,
        metrics={k: report[k] for k in ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "exact_match", "item_match",
                                        "token_accuracy") if k in report},
        training_command=training_command, dataset=dataset,
    )


def resolve_model_path(path):
    """A ``.keras`` file from ``path`` (a file or a run directory) and the run's config, if any."""
    path = Path(path)
    if path.is_dir():
        candidates = [path / "checkpoints" / f"{name}.keras" for name in ("best", "last", "generator_ema")]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise ExportError(
                f"Expected a run directory holding {', '.join(str(c) for c in candidates[:-1])} or {candidates[-1]}. "
                f"Received: {path}"
            )
        run_dir, path = path, found
    elif path.suffix == ".keras" and path.is_file():
        run_dir = path.parent.parent
    else:
        raise ExportError(f"Expected a .keras file or a run directory. Received: {path}")
    config_file = run_dir / "config.json"
    return path, json.loads(config_file.read_text()) if config_file.is_file() else {}


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m kvision.export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model_path", metavar="MODEL_PATH", help="a .keras file or a run directory")
    parser.add_argument("--name", required=True, help="served model name: <export-dir>/<name>/<version>")
    data = parser.add_argument_group("evaluation data (default: the run's config.json)")
    data.add_argument("--dataset", help="cifar10, cifar100, fashion_mnist, mnist (in memory); folder, tfrecord, "
                      "tfds:NAME (streamed)")
    data.add_argument("--data-dir", help="a local copy of the dataset (see the recipes' --help)")
    data.add_argument("--image-size", type=int, help="resize image-folder images to N×N")
    data.add_argument("--no-download", action="store_true", help="never try TFDS downloads")
    add_export_arguments(parser, model_dependent=True)
    parser.add_argument("--verbose", action="store_true", help="print the full traceback of an error, not only its line")
    return parser


def main(argv=None):
    """Parse ``argv`` and export; an error (a bad flag or path, a full disk) exits with one ``error:`` line."""
    args = build_parser().parse_args(argv)
    return exit_on_error(_export, args, verbose=args.verbose)


def _export(args):
    """The export ``main`` asks for, with the parsed ``args``."""
    check_export_arguments(args)
    model_path, config = resolve_model_path(args.model_path)
    dataset_name = args.dataset or config.get("dataset")
    try:
        model = load_model(model_path)
    except (ValueError, OSError) as err:
        raise ExportError(f"Could not load a Keras model from {model_path}: {err}") from None
    if isinstance(model, kvision.models.VAE):
        model = model.decoder  # draws images from latents as a GAN generator does
    if model.inputs[0].name == "source" or kvision.models.captioning.is_captioner(model):
        raise ExportError(
            "A seq2seq model or captioner is exported by its recipe, which needs its vocabularies and test split: "
            "run the recipe again with the same --run-dir (finished training is not repeated). "
            f"Received: {model_path}"
        )
    if model.inputs[0].name == "noise":  # a GAN's generator or a VAE's decoder; quality.json gives the metrics
        quality_file = model_path.parent.parent / "evaluation" / "quality.json"
        result = export_for_generator(
            model, args, name=args.name, training_command=config.get("command"),
            quality=json.loads(quality_file.read_text()) if quality_file.is_file() else None,
            dataset={"name": config["dataset"]} if "dataset" in config else None,
        )
        refuse_unpushed(result)
        return result
    if dataset_name is None:
        raise ExportError(f"Expected --dataset (no config.json next to the run of {model_path}). Received: none")
    dataset = open_dataset(
        dataset_name,
        args.data_dir or config.get("data_dir"),
        download=not args.no_download,
        image_size=args.image_size or config.get("image_size"),
        validation=config.get("validation_share", 0.05),
        seed=config.get("seed", 0),
    )
    result = export_for_dataset(model, dataset, args, name=args.name, training_command=config.get("command"),
                                crop=config.get("crop", "pad"))
    refuse_unpushed(result)
    return result
