"""run_recipe: the errors of users, of the machine and of TensorFlow end a recipe with one line."""

import errno

import pytest
import tensorflow as tf

from kvision.errors import DataError
from kvision.recipes.common import RunRules, add_run_arguments, recipe_parser, run_recipe


def raising(err):
    def run(args, *, rules):
        raise err

    return run


def parser():
    """A recipe's parser with the run flags (--config, --overwrite, --verbose) and one of its own."""
    made = recipe_parser("a recipe")
    made.add_argument("--epochs", type=int, default=3)
    add_run_arguments(made)
    return made


@pytest.mark.parametrize(
    "err, line",
    [
        (DataError("Expected an IDX file. Received: /data/x"), "error: Expected an IDX file. Received: /data/x"),
        (OSError(errno.ENOSPC, "No space left on device", "/runs/a/checkpoints/best.keras"),
         "error: OSError: [Errno 28] No space left on device: '/runs/a/checkpoints/best.keras'"),
        (OSError(errno.EACCES, "Permission denied", "/runs"), "error: PermissionError: [Errno 13] Permission denied: '/runs'"),
        (tf.errors.ResourceExhaustedError(None, None, "/runs/a/backup/ckpt.tmp; No space left on device\n\t [[{{node SaveV2}}]]"),
         "error: ResourceExhaustedError: /runs/a/backup/ckpt.tmp; No space left on device"),
    ],
    ids=["kvision", "enospc", "eacces", "tensorflow"],
)
def test_an_error_is_one_line_and_exit_status_1(err, line, capsys):
    with pytest.raises(SystemExit) as exited:
        run_recipe(raising(err), parser(), [])
    assert exited.value.code == line and capsys.readouterr().err == ""


def test_verbose_prints_the_traceback_before_the_line(capsys):
    with pytest.raises(SystemExit) as exited:
        run_recipe(raising(OSError(errno.ENOSPC, "No space left on device", "/runs")), parser(), ["--verbose"])
    assert exited.value.code == "error: OSError: [Errno 28] No space left on device: '/runs'"
    shown = capsys.readouterr().err
    assert shown.startswith("Traceback (most recent call last):") and "raise err" in shown


def test_a_bug_keeps_its_traceback_and_a_result_is_returned():
    with pytest.raises(ZeroDivisionError):
        run_recipe(raising(ZeroDivisionError("a bug")), parser(), [])
    assert run_recipe(lambda args, rules: args.epochs * 2, parser(), []) == 6


def test_the_rules_hold_the_defaults_and_what_may_change():
    seen = run_recipe(lambda args, rules: rules, parser(), ["--epochs", "5"], may_change=("epochs",))
    assert isinstance(seen, RunRules) and seen.defaults == {"epochs": 3, "config": None, "overwrite": False,
                                                             "verbose": False}
    assert "epochs" in seen.may_change and "run_dir" in seen.may_change
