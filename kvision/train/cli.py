"""Command-line flags and the error handling every training recipe shares."""

from kvision.errors import exit_on_error


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


def run_recipe(run, args):
    """``run(args)``; a user's mistake, a full disk or a TensorFlow I/O error exits with one ``error:`` line, status 1.

    ``args.verbose`` (when the recipe has the flag) prints the traceback too.
    """
    return exit_on_error(run, args, verbose=getattr(args, "verbose", False))
