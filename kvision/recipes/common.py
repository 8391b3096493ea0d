"""The glue every recipe shares: flag groups, ``--config``, the run directory, errors, the export, the summary.

Library functions take keyword arguments; this module is where a recipe's
parsed flags (an argparse ``Namespace``) become them, so each chore is done
one way by every recipe: ``run_recipe`` parses (``--config`` included) and
reports errors, ``open_recipe_run`` checks and records the run directory and
says what is about to happen, ``export_for_*`` publish the trained model with
the export flags, ``finish`` prints the summary and where to look next.
"""

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

from kvision.console import HelpFormatter, format_table, prog_name
from kvision.data.crop import EVAL_CROPS
from kvision.data.decode import ImageLimits
from kvision.data.stream import StreamedDataset
from kvision.data.stream_checks import sample_arrays
from kvision.errors import ExportError, exit_on_error
from kvision.export.exporters import export_captioner, export_classifier, export_generator, export_translator
from kvision.export.onnx_export import ONNX_INSTALL, require_onnx
from kvision.export.tflite import INT8_IO_TYPES, VARIANTS, parse_variants
from kvision.train.engine import MIXED_PRECISION
from kvision.train.records import open_run, respell

# Settings that change no training, besides the "export" group's flags: where a run lives, how it reports, the
# served name, whether TFDS may download. A run directory resumes (or exports again) with other values of them.
UNTRAINED = ("run_dir", "overwrite", "verbose", "name", "no_download")
# Recorded settings ``--config`` does not restore: deleting a run, or a fixed export version (never overwritten).
NOT_RESTORED = ("overwrite", "version")
# What config.json holds besides the flags (``kvision.train.records.write_config``).
RECORD_KEYS = ("command", "kvision")

REPRESENTATIVE_IMAGES = 300
EVALUATION_IMAGES = 10_000  # test images of a streamed dataset the export evaluates and checks
EVALUATION_BYTES = 2**30  # … at most this much uint8 pixel data
CLASSIFIER_TFLITE = "float32,int8"
GENERATOR_TFLITE = "float32"
GENERATOR_METRICS = ("frechet_distance", "frechet_distance_std", "class_accuracy", "num_samples", "seed", "cas",
                     "cas_real_accuracy", "cas_gap", "cas_samples", "cas_epochs", "elbo")


# --- flags -------------------------------------------------------------------------------------------------------


def recipe_parser(description):
    """An ``ArgumentParser`` for a recipe: its docstring as description, every default shown (``HelpFormatter``)."""
    return argparse.ArgumentParser(prog=prog_name(), description=description, formatter_class=HelpFormatter)


def add_data_arguments(parser, datasets):
    """A "data" group of ``parser``: ``--dataset`` (``datasets`` says which), ``--data-dir``, ``--no-download``.

    Returns the group, for a recipe's own data flags.
    """
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", default="fashion_mnist", help=datasets)
    data.add_argument("--data-dir", help="a local copy of the dataset (see `kvision train classification --help`)")
    data.add_argument("--no-download", action="store_true", help="never try TFDS downloads")
    return data


# Switches that have become choices: {setting: {recorded True/False: today's value}}, so older runs resume.
RESPELLED = {"mixed_precision": {True: "float16", False: None}}  # a switch before 8f5e3a1 (float16 only)


def add_speed_arguments(parser, *, profile=True):
    """``--mixed-precision``, ``--xla`` and (``profile``) ``--profile-batches``, in a "speed" group of ``parser``."""
    speed = parser.add_argument_group("speed")
    speed.add_argument("--mixed-precision", nargs="?", const="float16", choices=MIXED_PRECISION,
                       help="mixed-precision compute, float32 weights and outputs: float16 (GPUs; dynamic loss "
                            "scaling; the flag alone) or bfloat16 (CPUs with AMX or AVX512-BF16, TPUs); "
                            "default: float32")
    speed.add_argument("--xla", action="store_true", help="compile the train step with XLA (jit_compile)")
    if profile:
        speed.add_argument("--profile-batches", metavar="A,B",
                           help="profile training batches A to B (counted from 1; e.g. 10,20 skips the tracing steps) "
                                "for TensorBoard's Profile tab; default: off")


def tensorboard_options(args):
    """The engines' TensorBoard keywords from parsed flags: the run's settings as HParams, the batches to profile."""
    hparams = {key: value for key, value in vars(args).items() if key not in ("config", "overwrite", "verbose")}
    return dict(hparams=hparams, profile_batches=getattr(args, "profile_batches", None))


def add_run_arguments(group):
    """``--config``, ``--overwrite`` and ``--verbose`` in ``group`` (a parser or its "run" group): every recipe has them."""
    group.add_argument("--config", metavar="RUN_DIR/config.json",
                       help="run again with the settings a run recorded; flags given here override them "
                            "(not --overwrite or --version)")
    group.add_argument("--overwrite", action="store_true",
                       help="delete what --run-dir holds (checkpoints, backup, history, results, evaluation, "
                            "TensorBoard logs) and start afresh; without it a run directory with other settings is refused")
    group.add_argument("--verbose", action="store_true",
                       help="show TensorFlow's C++ log lines and the full traceback of an error")


def positive_int(text):
    """argparse type: an integer ≥ 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer. Received: {text}")
    return value


def probability(text):
    """argparse type: a number in [0, 1]."""
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a probability in [0, 1]. Received: {text}")
    return value


def add_preset_argument(parser, presets, *, default):
    """``--preset NAME``: the defaults ``presets[NAME]`` (flag name → value) gives; flags given override them.

    Every preset names the same flags, so choosing one (after ``--config``
    too) sets all of them; ``default`` names the one that is the recipe's
    defaults. The help spells each preset out as the flags it stands for.
    """
    flags = {action.dest: action for action in parser._actions if action.option_strings}
    names = set(presets[default])
    for name, settings in presets.items():
        if set(settings) != names or any(dest not in flags or flags[dest].nargs == 0 for dest in settings):
            raise ValueError(f"preset {name!r}: expected values for the flags {sorted(names)}, each a flag of this "
                             f"recipe that takes a value. Received: {sorted(settings)}")
    spelled = "; ".join(
        f"{name}: " + " ".join(f"{flags[dest].option_strings[0]} {value}" for dest, value in settings.items())
        for name, settings in presets.items()
    )
    parser.add_argument("--preset", choices=tuple(presets), default=default,
                        help=f"named defaults, flags given override them ({spelled})")
    parser.set_defaults(**presets[default])
    parser.presets = presets  # parse_recipe_args applies the one named on the command line


def add_export_arguments(parser, *, classifier=True, model_dependent=False, tflite=True, images=None):
    """The export flags, as a group of ``parser``; recipes and ``kvision export`` share them.

    ``classifier=False`` leaves out the classifier-only flags (int8, accuracy
    bar), for generators; ``tflite=False`` leaves out ``--tflite``, for
    seq2seq models (exported as SavedModels only); ``images`` (default:
    ``classifier``) adds the budgets of the encoded images the exported
    signatures accept (``--max-image-pixels`` …). ``--tflite`` defaults to
    ``float32,int8`` for classifiers and ``float32`` for generators; with
    ``model_dependent`` (``kvision export``, which learns the kind of model
    later) it is left None until then.
    """
    group = parser.add_argument_group("export")
    group.add_argument("--export-dir", default="saved_models", help="serving base directory; versions go to <dir>/<name>/<version>")
    group.add_argument("--version", type=int, help="export version (default: Unix time); an existing one is never overwritten")
    variants = VARIANTS if classifier else tuple(v for v in VARIANTS if v != "int8")
    default = None if model_dependent else CLASSIFIER_TFLITE if classifier else GENERATOR_TFLITE
    shown = f" (default: {CLASSIFIER_TFLITE} for classifiers, {GENERATOR_TFLITE} for generators)" if model_dependent else ""
    if tflite:
        group.add_argument("--tflite", default=default,
                           help=f"comma-separated TFLite variants among {','.join(variants)} ('' for none){shown}")
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


def untrained_settings(parser, *also):
    """Names of the settings of ``parser`` that change no training: the "export" group's, ``UNTRAINED`` and ``also``.

    ``also`` names a recipe's own, e.g. evaluation-only flags.
    """
    export = [group for group in parser._action_groups if group.title == "export"]
    return (*UNTRAINED, *(action.dest for group in export for action in group._group_actions), *also)


def parser_defaults(parser):
    """``{dest: default}`` of every flag of ``parser`` (``set_defaults`` included), help aside."""
    return {a.dest: parser.get_default(a.dest) for a in parser._actions if a.dest != argparse.SUPPRESS and a.dest != "help"}


def read_config(path, parser):
    """The settings a run's config.json records, as ``parser``'s defaults; unknown keys or a bad file exit with an error.

    Keys that are no flag of ``parser`` are refused, naming the file (a
    config.json of another recipe); ``command`` and ``kvision`` (what
    ``write_config`` adds) and ``NOT_RESTORED`` are skipped. A switch's
    true/false recorded before it became a choice is read as today's value
    (``RESPELLED``), as ``open_run`` reads it.
    """
    try:
        recorded = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        parser.error(f"--config: expected a run's config.json. Received: {path} ({err})")
    if not isinstance(recorded, dict):
        parser.error(f"--config: expected a JSON object of settings. Received: {path} holds a {type(recorded).__name__}")
    known = parser_defaults(parser)
    unknown = sorted(key for key in recorded if key not in known and key not in RECORD_KEYS)
    if unknown:
        parser.error(f"--config {path}: settings this recipe does not have (another recipe's config.json?). "
                     f"Expected some of: {', '.join(sorted(known))}. Received: {', '.join(unknown)}")
    return respell({key: value for key, value in recorded.items() if key in known and key not in (*NOT_RESTORED, "config")},
                   RESPELLED)


def parse_recipe_args(parser, argv=None):
    """``parser.parse_args(argv)``; the flags given override ``--preset NAME``'s defaults, which override ``--config FILE``'s.

    With ``--config FILE``, FILE's recorded settings are the defaults; a
    ``--preset`` given too replaces those of its flags (``add_preset_argument``).
    """
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    pre.add_argument("--preset")
    known = pre.parse_known_args(argv)[0]
    if known.config is not None:
        saved = read_config(known.config, parser)
        for action in parser._actions:
            if action.dest in saved:
                action.required = False  # given by the file
        parser.set_defaults(**saved)
    presets = getattr(parser, "presets", {})
    if known.preset in presets:  # an unknown name is refused by the parser's own --preset choices
        parser.set_defaults(**presets[known.preset])
    return parser.parse_args(argv)


# --- the run -----------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RunRules:
    """What a run directory accepts when a recipe resumes it.

    ``may_change``: settings that may take other values (``untrained_settings``);
    ``defaults``: every flag's default, so a run recorded before a flag existed
    resumes while that flag keeps its default.
    """

    may_change: tuple = ()
    defaults: dict = dataclasses.field(default_factory=dict)


def run_recipe(run, parser, argv=None, *, may_change=()):
    """Parse ``argv`` (``--config`` included) with ``parser`` and return ``run(args, rules=RunRules(…))``.

    ``may_change``: the recipe's own settings that change no training (added
    to ``untrained_settings``). A user's mistake, a full disk or a TensorFlow
    I/O error exits with one ``error:`` line, status 1; ``--verbose`` prints
    the traceback too.
    """
    rules = RunRules(untrained_settings(parser, *may_change), parser_defaults(parser))  # before --config's
    args = parse_recipe_args(parser, argv)
    return exit_on_error(lambda: run(args, rules=rules), verbose=getattr(args, "verbose", False))


def open_recipe_run(run_dir, args, rules, *, strategy=None):
    """``open_run`` of a recipe's parsed ``args`` in ``run_dir``; prints the devices and the run directory.

    ``rules`` come from ``run_recipe``; ``strategy`` (``get_strategy()``) is
    described when given.
    """
    settings = {key: value for key, value in vars(args).items() if key != "config"}
    earlier = (Path(run_dir) / "config.json").exists() and not args.overwrite
    results = open_run(run_dir, settings, may_change=rules.may_change, overwrite=args.overwrite,
                       defaults=rules.defaults, respelled=RESPELLED)
    if strategy is not None:
        print(f"devices: {strategy.num_replicas_in_sync} replica(s) on {', '.join(strategy_devices(strategy))} "
              f"({type(strategy).__name__})")
    state = "resuming the run recorded there (finished steps are loaded)" if earlier else "a new run"
    print(f"run: {run_dir}: {state}")
    return results


def strategy_devices(strategy):
    """The short names (``CPU:0``, ``GPU:1``) of the devices ``strategy`` computes on."""
    try:
        devices = strategy.extended.worker_devices
    except RuntimeError:  # the default strategy: TensorFlow's default device, the first GPU if there is one
        devices = [(tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU"))[0].name]
    return sorted({device.split("/device:")[-1] for device in devices})


def announce_model(label, model):
    """Print one line about a model a recipe will train: its name, parameters and input shape."""
    shape = model.input_shape if not isinstance(model.input_shape, list) else model.input_shape[0]
    print(f"model: {label}, {model.count_params():,} parameters, input {tuple(shape[1:])}")


def training_command():
    """The command line that started this run, as export records and config.json say it."""
    return " ".join(sys.argv)


# --- export ------------------------------------------------------------------------------------------------------


def check_export_arguments(args):
    """Fail on bad export flags before any training or loading happens."""
    if getattr(args, "tflite", None) is not None:  # None: kvision export's default, resolved once the model is known
        parse_variants(args.tflite)
    if getattr(args, "onnx", False):
        require_onnx()
    if args.keep_versions < 1:
        raise ExportError(f"--keep-versions must be at least 1. Received: {args.keep_versions}")
    if getattr(args, "bless_min_accuracy", None) is not None and not 0 <= args.bless_min_accuracy <= 1:
        raise ExportError(f"--bless-min-accuracy is a fraction in [0, 1]. Received: {args.bless_min_accuracy}")
    if args.version is not None and args.version < 0:
        raise ExportError(f"--version must be a non-negative integer. Received: {args.version}")


def image_limits(args):
    """The ``ImageLimits`` of ``args``' export flags."""
    return ImageLimits(args.max_image_pixels, args.max_image_bytes, args.max_batch_size)


def tflite_variants(args, default):
    """The --tflite variants; ``default`` when the flag was left at ``kvision export``'s model-dependent default."""
    return parse_variants(default if args.tflite is None else args.tflite)


def publishing(args):
    """The keyword arguments every exporter takes from the export flags: where, which version, when to publish."""
    return dict(version=args.version, push_only_if_blessed=args.push_only_if_blessed, keep_versions=args.keep_versions)


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
        model, args.export_dir, name, class_names=dataset.class_names, eval_images=eval_images,
        eval_labels=eval_labels, representative_images=representative,
        tflite=tflite_variants(args, CLASSIFIER_TFLITE), onnx=args.onnx, int8_io=args.int8_io,
        allow_select_ops=args.allow_select_ops, bless_min_accuracy=args.bless_min_accuracy, limits=image_limits(args),
        metrics=metrics,        training_command=training_command, dataset=provenance, eval_crop=EVAL_CROPS[crop], **publishing(args),
    )


def export_for_generator(generator, args, *, name, quality=None, training_command=None, dataset=None):
    """``export_generator`` with the export flags in ``args``; ``quality`` from the GAN or VAE recipe.

    evaluation.json's metrics keep the quality figures and the sample count
    and seed they were measured with (``GENERATOR_METRICS``), so
    ``kvision evaluate gan`` re-scores the served model alike.
    """
    return export_generator(
        generator, args.export_dir, name, tflite=tflite_variants(args, GENERATOR_TFLITE), onnx=args.onnx,
        metrics={k: quality[k] for k in GENERATOR_METRICS if k in (quality or {})},
        training_command=training_command, dataset=dataset, **publishing(args),
    )


def export_for_translator(translator, args, *, name, sources, report, training_command=None, dataset=None):
    """``export_translator`` with the export flags in ``args``; ``report`` from ``evaluate_seq2seq``."""
    return export_translator(
        translator, args.export_dir, name, sources, max_word_error_rate=args.bless_max_wer,
        metrics={k: report[k] for k in ("word_error_rate", "token_error_rate", "bleu", "token_accuracy")},
        training_command=training_command, dataset=dataset, **publishing(args),
    )


def export_for_captioner(captioner, args, *, name, images, report, training_command=None, dataset=None):
    """``export_captioner`` with the export flags in ``args``; ``report`` from ``evaluate_captioner``."""
    return export_captioner(
        captioner, args.export_dir, name, images, min_bleu_4=args.bless_min_bleu_4, limits=image_limits(args),
        metrics={k: report[k] for k in ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "exact_match", "item_match",
                                        "token_accuracy") if k in report},
        training_command=training_command, dataset=dataset, **publishing(args),
    )


def refuse_unpushed(result):
    """Raise ``ExportError`` naming the failed checks when ``result`` was not pushed."""
    if not result.pushed:
        failed = "; ".join(f"{c.name} = {c.value:.4g} (bar {c.op} {c.bar:g})" for c in result.failed_checks)
        raise ExportError(f"Version {result.version} is NOT_BLESSED and was not pushed; kept at {result.path}. Failed: {failed}")


# --- the end -----------------------------------------------------------------------------------------------------


def finish(summary, export, *, run_dir):
    """``print_summary`` of a recipe's ``summary`` with where ``export`` went; then refuse an unpushed export.

    ``export`` is None in a process that did not export (a worker that is not the chief).
    """
    summary.update(saved_model=str(export.path) if export else None, blessed=export.blessed if export else None)
    print_summary(summary, run_dir=run_dir, export=export)
    if export:
        refuse_unpushed(export)
    return summary


def print_summary(summary, *, run_dir, export=None):
    """Print ``summary`` as JSON (for programs), then ``summary_table`` (for people); returns the summary."""
    print(json.dumps(summary, indent=2))
    print(summary_table(summary, run_dir=run_dir, export=export))
    return summary


def summary_table(summary, *, run_dir, export=None):
    """A recipe's last lines: its figures, the files it wrote and where to look next (TensorBoard, the export)."""
    figures = [{"figure": key, "value": round(value, 4) if isinstance(value, float) else value}
               for key, value in summary.items()
               if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "blessed"]
    written = [("run directory", run_dir)]
    written += [(key, summary[key]) for key in ("report", "samples", "pictures") if summary.get(key)]
    if export is not None:
        written.append(("export", f"{export.path} ({'BLESSED' if export.blessed else 'NOT_BLESSED'}"
                                  f"{', published' if export.pushed else ', not published'})"))
    lines = ["", format_table(figures, ("figure", "value")), ""] if figures else [""]
    lines += [f"{label + ':':<15} {value}" for label, value in written]
    lines += ["", "next:", f"  tensorboard --logdir {run_dir}", f"  kvision runs {Path(run_dir).parent}"]
    if export is not None and export.pushed:
        lines.append(f"  saved_model_cli show --all --dir {export.path}")
    return "\n".join(lines)
