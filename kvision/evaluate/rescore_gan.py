"""``python -m kvision.evaluate gan``: re-score an exported GAN generator from its SavedModel alone.

    python -m kvision.evaluate gan --model saved_models/fashion_mnist_dcgan_conditional/3
    python -m kvision.evaluate gan --model saved_models/fashion_mnist_dcgan_conditional/3 --cas
    python -m kvision.evaluate gan --model EXPORT_DIR/NAME/VERSION --classifier runs/cnn/checkpoints/best.keras

The version directory is loaded with ``tf.saved_model.load`` and sampled
through its ``serving_default`` signature (``noise`` [and ``label``] →
uint8 ``images``): what TF Serving serves, with no Keras generator and no
training code. The Fréchet distance and (conditional) class accuracy are
computed as the DCGAN recipe computes them — same classifier features, and
the sample count and seed recorded in the version's evaluation.json — and
``--cas`` adds the classification accuracy score (``kvision.evaluate.cas``).
A JSON report on stdout gives each figure beside the recorded one and
whether they agree within sampling noise (3 standard errors; the report
states how each is computed).
"""

import argparse
import json
import math
from pathlib import Path

import tensorflow as tf

from kvision.console import HelpFormatter, prog_name
from kvision.data import load_dataset
from kvision.errors import DataError, ExportError, ModelError, exit_on_error
from kvision.evaluate.cas import EPOCHS, classification_accuracy_score
from kvision.evaluate.frechet import default_classifier_path, generator_quality, load_classifier

BOOTSTRAP = 10  # resamples for the Fréchet distance's sampling noise
TOLERANCE = (
    "|rescored - recorded| <= 3 standard errors of sampling noise: accuracies, the pooled two-proportion standard "
    "error over the samples (class accuracy) or the real test images (CAS); the Fréchet distance, the bootstrap "
    f"standard deviation over {BOOTSTRAP} resamples of the generated features, of both runs when recorded"
)


def load_generator(path):
    """``(sample_fn, latent_dim, conditional, image_shape)`` of the generator SavedModel in ``path``.

    ``sample_fn(noise, labels)`` returns uint8 images from ``serving_default``.
    Raises ``ExportError`` naming ``path`` when it holds no SavedModel or no
    generator signature.
    """
    path = Path(path)
    if not (path / "saved_model.pb").is_file():
        raise ExportError(f"Expected an exported SavedModel version directory (<export-dir>/<name>/<version>/ "
                          f"holding saved_model.pb). Received: {path}")
    try:
        signatures = tf.saved_model.load(str(path)).signatures
    except (OSError, ValueError, tf.errors.OpError) as err:
        raise ExportError(f"Could not load the SavedModel in {path}: {str(err).splitlines()[0]}") from None
    serve = signatures.get("serving_default")
    inputs = serve.structured_input_signature[1] if serve is not None else {}
    outputs = serve.structured_outputs if serve is not None else {}
    if set(inputs) not in ({"noise"}, {"noise", "label"}) or getattr(outputs.get("images"), "dtype", None) != tf.uint8:
        raise ExportError(
            "Expected a generator's serving_default signature: noise (and label) -> uint8 images. Received: "
            f"{path} with signatures {sorted(signatures)}, serving_default inputs {sorted(inputs)} and outputs "
            f"{sorted(outputs)}"
        )
    conditional = "label" in inputs

    def sample(noise, labels):
        feed = {"noise": tf.constant(noise, tf.float32)}
        if conditional:
            feed["label"] = tf.constant(labels, tf.int32)
        return serve(**feed)["images"].numpy()

    return sample, int(inputs["noise"].shape[-1]), conditional, tuple(outputs["images"].shape[1:])


def _proportion_tolerance(a, b, count_a, count_b):
    """3 pooled standard errors of the difference of two proportions measured on ``count_a`` and ``count_b`` items."""
    pooled = (a * count_a + b * count_b) / (count_a + count_b)
    return 3 * math.sqrt(pooled * (1 - pooled) * (1 / count_a + 1 / count_b))


def compare(rescored, recorded, *, test_images):
    """``{figure: {recorded, rescored, difference, tolerance, agree}}`` for the figures both hold.

    ``rescored`` and ``recorded`` are quality dicts (``generator_quality`` and
    ``classification_accuracy_score`` keys; a recorded one may lack sample
    counts: the rescored ones are assumed); ``test_images`` is the size of
    the real test split CAS is measured on.
    """
    samples = {"class_accuracy": (recorded.get("num_samples", rescored["num_samples"]), rescored["num_samples"]),
               "cas": (test_images, test_images), "cas_real_accuracy": (test_images, test_images)}
    result = {}
    for figure in ("frechet_distance", "class_accuracy", "cas", "cas_real_accuracy"):
        if figure not in rescored or figure not in recorded:
            continue
        old, new = float(recorded[figure]), float(rescored[figure])
        if figure == "frechet_distance":
            noise = rescored["frechet_distance_std"]
            tolerance = 3 * math.hypot(recorded.get("frechet_distance_std", noise), noise)
        else:
            tolerance = _proportion_tolerance(old, new, *samples[figure])
        result[figure] = {"recorded": old, "rescored": new, "difference": new - old, "tolerance": tolerance,
                          "agree": abs(new - old) <= tolerance}
    return result


def rescore(model, *, classifier=None, cas=False, cas_samples=60_000, cas_epochs=EPOCHS, num_samples=None, seed=None,
            dataset=None, data_dir=None, download=True):
    """The report ``python -m kvision.evaluate gan`` prints, for the version directory ``model``.

    Args:
        model: ``<export-dir>/<name>/<version>`` of an exported generator.
        classifier: the feature classifier's ``.keras`` file (default: the
            classification recipe's CNN for the dataset, as in the DCGAN recipe);
            also CAS's real-data reference.
        cas: also measure CAS (conditional generators), with ``cas_samples``
            generated training images and ``cas_epochs`` epochs.
        num_samples, seed: of the Fréchet distance and class accuracy; default:
            those recorded in evaluation.json (else 10 000 and 0).
        dataset, data_dir, download: the real data; default: the dataset
            evaluation.json names, found as ``load_dataset`` finds it.
    """
    sample, latent_dim, conditional, image_shape = load_generator(model)
    evaluation_file = Path(model) / "evaluation.json"
    evaluation = json.loads(evaluation_file.read_text()) if evaluation_file.is_file() else {}
    recorded = evaluation.get("metrics", {})
    name = dataset or (evaluation.get("dataset") or {}).get("name")
    if name is None:
        raise DataError(f"Expected --dataset: {evaluation_file} names no dataset. Received: none")
    data = load_dataset(name, data_dir, download=download)
    if data.image_shape != image_shape:
        raise DataError(f"The generator draws {image_shape} images; {name} holds {data.image_shape} ones. "
                        f"Received: --model {model}, dataset {name}")
    if cas and not conditional:
        raise ModelError(f"CAS needs a conditional generator (a label input). Received: {model} takes noise only")
    num_classes = data.num_classes if conditional else None
    feature_model = load_classifier(classifier or default_classifier_path(name), data.image_shape, data.num_classes)
    options = dict(num_samples=num_samples or recorded.get("num_samples", 10_000),
                   seed=recorded.get("seed", 0) if seed is None else seed)
    quality = generator_quality(sample, feature_model, data.test[0], num_classes=num_classes, latent_dim=latent_dim,
                                bootstrap=BOOTSTRAP, **options)
    if cas:
        quality.update(classification_accuracy_score(
            sample, data.test, num_classes=num_classes, latent_dim=latent_dim, real_classifier=feature_model,
            num_samples=cas_samples, epochs=cas_epochs, seed=options["seed"],
        ))
    comparison = compare(quality, recorded, test_images=len(data.test[1]))
    return {
        "model": str(model),
        "dataset": name,
        "classifier": str(classifier or default_classifier_path(name)),
        "rescored": quality,
        "recorded": {k: v for k, v in recorded.items() if isinstance(v, (int, float))},
        "comparison": comparison,
        "agree": all(figure["agree"] for figure in comparison.values()) if comparison else None,
        "tolerance": TOLERANCE,
    }


def build_parser():
    parser = argparse.ArgumentParser(prog=prog_name("python -m kvision.evaluate gan"), description=__doc__,
                                     formatter_class=HelpFormatter)
    parser.add_argument("--model", required=True, metavar="EXPORT_DIR/NAME/VERSION", help="an exported generator")
    parser.add_argument("--classifier", help="the feature classifier (.keras; default: runs/<dataset>_cnn/checkpoints/"
                        "best.keras, as in recipes/dcgan.py); also CAS's real-data reference")
    parser.add_argument("--samples", type=int, help="samples for the Fréchet distance and class accuracy "
                        "(default: as recorded in evaluation.json)")
    parser.add_argument("--seed", type=int, help="noise seed (default: as recorded in evaluation.json)")
    parser.add_argument("--cas", action="store_true",
                        help="also the classification accuracy score (trains a classifier)")
    parser.add_argument("--cas-samples", type=int, default=60_000,
                        help="generated training images (default: %(default)s)")
    parser.add_argument("--cas-epochs", type=int, default=EPOCHS, help="CAS classifier epochs (default: %(default)s)")
    parser.add_argument("--dataset", help="the real data (default: the one evaluation.json names)")
    parser.add_argument("--data-dir", help="a local copy of the dataset")
    parser.add_argument("--no-download", action="store_true", help="never try TFDS downloads")
    parser.add_argument("--verbose", action="store_true", help="print the full traceback of an error")
    return parser


def main(argv=None):
    """Parse ``argv``, re-score and print the JSON report; a user's error exits with one ``error:`` line."""
    args = build_parser().parse_args(argv)

    def run():
        report = rescore(args.model, classifier=args.classifier, cas=args.cas, cas_samples=args.cas_samples,
                         cas_epochs=args.cas_epochs, num_samples=args.samples, seed=args.seed, dataset=args.dataset,
                         data_dir=args.data_dir, download=not args.no_download)
        print(json.dumps(report, indent=2))
        return report

    return exit_on_error(run, verbose=args.verbose)
