"""``kvision export`` (``python -m kvision.export``): export any saved classifier apart from training.

The export flags are the recipes' (``kvision.recipes.common.add_export_arguments``).

    kvision export runs/fashion_mnist_cnn --name fashion_mnist_cnn
    kvision export model.keras --name flowers --dataset image_folder --data-dir ~/flowers \\
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

    kvision export runs/fashion_mnist_dcgan_conditional --name fashion_mnist_dcgan_conditional --tflite float32
"""

import argparse
import json
from pathlib import Path

import kvision.models
from kvision.console import HelpFormatter, prog_name
from kvision.data import open_dataset
from kvision.errors import ExportError, exit_on_error
from kvision.recipes.common import (add_export_arguments, check_export_arguments, export_for_dataset,
                                    export_for_generator, refuse_unpushed)
from kvision.saving import load_model


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
    parser = argparse.ArgumentParser(prog=prog_name("python -m kvision.export"), description=__doc__,
                                     formatter_class=HelpFormatter)
    parser.add_argument("model_path", metavar="MODEL_PATH", help="a .keras file or a run directory")
    parser.add_argument("--name", required=True, help="served model name: <export-dir>/<name>/<version>")
    data = parser.add_argument_group("evaluation data (default: the run's config.json)")
    data.add_argument("--dataset", help="cifar10, cifar100, fashion_mnist, mnist (in memory); folder, tfrecord, "
                      "tfds:NAME (streamed)")
    data.add_argument("--data-dir", help="a local copy of the dataset (see the recipes' --help)")
    data.add_argument("--image-size", type=int, help="resize image-folder images to N×N")
    data.add_argument("--no-download", action="store_true", help="never try TFDS downloads")
    add_export_arguments(parser, model_dependent=True)
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's C++ log lines and the full traceback of an error, not only its line")
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
