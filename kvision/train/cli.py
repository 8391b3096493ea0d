"""Command-line flags and the error handling every training recipe shares."""

from kvision.errors import exit_on_error
from kvision.train.records import open_run

# Settings that change no training, besides the "export" group's flags: where a run lives, how it reports, the
# served name, whether TFDS may download. A run directory resumes (or exports again) with other values of them.
UNTRAINED = ("run_dir", "overwrite", "verbose", "name", "no_download")


def add_data_arguments(parser, datasets):
    """A "data" group of ``parser``: ``--dataset`` (``datasets`` says which), ``--data-dir``, ``--no-download``.

    Returns the group, for a recipe's own data flags.
    """
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", default="fashion_mnist", help=f"{datasets} (default: %(default)s)")
    data.add_argument("--data-dir", help="a local copy of the dataset (see recipes/classification.py --help)")
    data.add_argument("--no-download", action="store_true", help="never try TFDS downloads")
    return data


def add_speed_arguments(parser):
    """``--mixed-precision`` and ``--xla``, in a "speed" group of ``parser``."""
    speed = parser.add_argument_group("speed")
    speed.add_argument("--mixed-precision", action="store_true",
                       help="mixed_float16 compute with dynamic loss scaling (float32 weights and outputs)")
    speed.add_argument("--xla", action="store_true", help="compile the train step with XLA (jit_compile)")


def add_run_arguments(group):
    """``--overwrite`` and ``--verbose`` in ``group`` (a parser or its "run" group): the flags every recipe has."""
    group.add_argument("--overwrite", action="store_true",
                       help="delete what --run-dir holds (checkpoints, backup, history, results, evaluation, "
                            "TensorBoard logs) and start afresh; without it a run directory with other settings is refused")
    group.add_argument("--verbose", action="store_true", help="print the full traceback of an error")


def untrained_settings(parser, *also):
    """Names of the settings of ``parser`` that change no training: the "export" group's, ``UNTRAINED`` and ``also``.

    ``also`` names a recipe's own, e.g. evaluation-only flags.
    """
    export = [group for group in parser._action_groups if group.title == "export"]
    return (*UNTRAINED, *(action.dest for group in export for action in group._group_actions), *also)


def open_recipe_run(run_dir, args, may_change):
    """``open_run`` of a recipe's parsed ``args`` in ``run_dir``; ``may_change`` from ``untrained_settings``."""
    return open_run(run_dir, vars(args), may_change=may_change, overwrite=args.overwrite)


def run_recipe(run, args):
    """``run(args)``; a user's mistake, a full disk or a TensorFlow I/O error exits with one ``error:`` line, status 1.

    ``args.verbose`` (when the recipe has the flag) prints the traceback too.
    """
    return exit_on_error(run, args, verbose=getattr(args, "verbose", False))
