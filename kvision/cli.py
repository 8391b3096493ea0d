"""``kvision``: train a recipe, export, evaluate, launch a multi-worker job, convert data, list models and runs.

    kvision train fashion_mnist --epochs 1          # a recipe; `kvision train --help` lists them
    kvision train cifar10 --config runs/cifar10_resnet20/config.json --epochs 200
    kvision runs                                    # the run directories below runs/
    kvision models                                  # the registered models, task and parameters
    kvision export runs/fashion_mnist_cnn --name fashion_mnist_cnn
    kvision evaluate g2p --model saved_models/g2p_cmudict/<version>
    kvision launch --workers 2 -- train cifar10 --epochs 1
    kvision data convert --dataset fashion_mnist --output ~/data/fashion_mnist_tfrecord

Every command explains its flags with --help. TensorFlow's C++ start-up
lines are hidden unless TF_CPP_MIN_LOG_LEVEL is set or --verbose is given.
``python -m kvision`` is the same command.
"""

import difflib
import importlib
import sys

from kvision.console import start_tensorflow
from kvision.recipes import RECIPES

# name: ("module:function" called with the remaining arguments, whether it uses TensorFlow, one line of help)
COMMANDS = {
    "train": ("kvision.cli:train", True, "train, evaluate and export with a recipe: kvision train RECIPE [flags]"),
    "export": ("kvision.export.cli:main", True, "export a saved classifier, GAN generator or VAE decoder, verified"),
    "evaluate": ("kvision.evaluate.__main__:main", True, "re-score an exported model from its SavedModel alone"),
    "launch": ("kvision.launch:main", False, "run a recipe as a local multi-worker job (TF_CONFIG on loopback)"),
    "data": ("kvision.cli:data", True, "dataset tools: kvision data convert (any dataset → TFRecord shards)"),
    "models": ("kvision.recipes.inventory:models_command", True, "the registered models, their task and parameters"),
    "runs": ("kvision.recipes.inventory:runs_command", False, "a table of run directories: recipe, figures, export"),
}
DATA_COMMANDS = {"convert": ("kvision.data.convert:main", "write any dataset kvision reads as TFRecord shards")}


def resolve(target):
    """The function ``"module:function"`` names, its module imported now (lazily: most import TensorFlow)."""
    module, function = target.split(":")
    return getattr(importlib.import_module(module), function)


def listing(title, entries):
    """``title`` and one indented line per ``{name: summary}`` entry."""
    width = max(map(len, entries))
    return "\n".join([title, *(f"  {name:<{width}}  {summary}" for name, summary in entries.items())])


def choose(kind, name, names):
    """Exit with a clear error unless ``name`` is one of ``names`` (close matches suggested)."""
    if name in names:
        return name
    close = difflib.get_close_matches(name or "", names, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise SystemExit(f"error: unknown {kind}.{hint} Expected one of: {', '.join(names)}. Received: {name or 'none'}")


def wants_help(argv):
    """Whether ``argv`` asks for the listing: nothing, ``-h`` or ``--help`` first."""
    return not argv or argv[0] in ("-h", "--help")


def train(argv):
    """``kvision train RECIPE [flags]``: the recipe's ``main`` with the flags."""
    if wants_help(argv):
        print("usage: kvision train RECIPE [flags]   (kvision train RECIPE --help: its flags and their defaults)\n")
        print(listing("recipes:", RECIPES))
        return None
    recipe = choose("recipe", argv[0], list(RECIPES))
    return run_command(f"kvision.recipes.{recipe}:main", ["train", recipe], argv[1:], tensorflow=True)


def data(argv):
    """``kvision data COMMAND [flags]``: a dataset tool."""
    if wants_help(argv):
        print("usage: kvision data COMMAND [flags]\n")
        print(listing("commands:", {name: summary for name, (_, summary) in DATA_COMMANDS.items()}))
        return None
    name = choose("data command", argv[0], list(DATA_COMMANDS))
    return run_command(DATA_COMMANDS[name][0], ["data", name], argv[1:], tensorflow=True)


def run_command(target, words, argv, *, tensorflow):
    """Call ``target`` with ``argv`` as the command ``kvision WORDS…``: its help and recorded command line say so.

    A command that uses TensorFlow gets oneDNN kernels and a quiet start (``start_tensorflow``)
    unless ``--verbose`` is among ``argv`` or ``TF_CPP_MIN_LOG_LEVEL`` is set.
    """
    if tensorflow:
        start_tensorflow(argv)
    sys.argv = [" ".join(["kvision", *words]), *argv]
    return resolve(target)(argv)


def main(argv=None):
    """Run the ``kvision`` command on ``argv`` (default: the command line); returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if wants_help(argv):
        print(__doc__.strip() + "\n")
        print(listing("commands:", {name: summary for name, (_, _, summary) in COMMANDS.items()}))
        return 0
    if argv[0] == "--version":
        from importlib.metadata import version

        print(f"kvision {version('kvision')}")
        return 0
    name = choose("command", argv[0], list(COMMANDS))
    target, tensorflow, _ = COMMANDS[name]
    if target.startswith("kvision.cli:"):  # train and data choose their own subcommand
        result = resolve(target)(argv[1:])
    else:  # evaluate's own command (g2p, gan) is named in the program name its help shows
        words = [name, argv[1]] if name == "evaluate" and argv[1:2] and not argv[1].startswith("-") else [name]
        result = run_command(target, words, argv[1:], tensorflow=tensorflow)
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


if __name__ == "__main__":
    sys.exit(main())
