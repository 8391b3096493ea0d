"""The ``kvision`` command: dispatch, help with every default, a quiet start, ``kvision runs``/``models``, ``--config``.

``kvision train`` end to end is the fashion run of test_classification_recipes.py.
"""

import argparse
import json
import os
import re
import subprocess
import sys

import pytest

from kvision.cli import main
from kvision.console import HelpFormatter, quiet_tensorflow, use_onednn
from kvision.models import build
from kvision.recipes import RECIPES
from kvision.recipes import classification
from kvision.recipes.common import add_preset_argument, add_run_arguments, parse_recipe_args
from kvision.recipes.inventory import model_rows, runs_table
from tests.recipes.helpers import ROOT, run_kvision


def imports_tensorflow(code, cwd):
    """Whether running ``code`` in a fresh interpreter (this checkout first) leaves ``tensorflow`` imported."""
    probe = f"{code}\nimport sys\nprint('tensorflow' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], cwd=cwd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1] == "True"


def test_help_lists_every_command_and_every_recipe(capsys):
    assert main(["--help"]) == 0
    shown = capsys.readouterr().out
    for command in ("train", "export", "evaluate", "launch", "data", "models", "runs"):
        assert f"\n  {command} " in shown
    assert main(["train", "--help"]) == 0
    shown = capsys.readouterr().out
    for name, summary in RECIPES.items():
        assert f"  {name} " in shown and summary in shown


def test_every_listed_recipe_is_a_module_with_main():
    import importlib

    for name in RECIPES:
        assert callable(importlib.import_module(f"kvision.recipes.{name}").main)


@pytest.mark.parametrize("argv, message", [
    (["trian"], "error: unknown command. Did you mean train? Expected one of: train, export"),
    (["train", "fashion_mnst"], "error: unknown recipe. Did you mean fashion_mnist?"),
    (["data", "convrt"], "error: unknown data command. Did you mean convert?"),
])
def test_a_misspelt_command_is_refused_with_the_close_names(argv, message):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert str(exited.value.code).startswith(message)


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_recipe_help_shows_each_default_and_no_switch_default(recipe, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["train", recipe, "--help"])
    shown = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert exited.value.code == 0 and shown.startswith(f"usage: kvision train {recipe} ")
    for never in ("(default: None)", "(default: False)", "(default: True)", "%(default)"):
        assert never not in shown
    assert "--config RUN_DIR/config.json" in shown
    assert ("--keep-versions KEEP_VERSIONS versions the written models.config serves (default: 2)" in shown) == (
        recipe not in ("simclr", "distill")), "the recipes that export have the export flags"


def test_fashion_mnist_help_gives_its_own_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["train", "fashion_mnist", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    for text in ("passes over the training split (default: 8)", "peak learning rate (default: 0.1)",
                 "--model MODEL one of:", "(default: cnn_fast)", "--tta {none,flip}", "(default: flip)", "area fraction of an inception training crop (default: 0.08 1.0)",
                 "--no-flip no horizontal flips --cutout", "--tflite TFLITE comma-separated TFLite variants among "):
        assert text in shown
    assert "(default: float32,int8)" in shown


def test_the_formatter_shows_values_not_switches():
    parser = argparse.ArgumentParser(formatter_class=HelpFormatter)
    parser.add_argument("--rate", type=float, default=0.5, help="a rate of 10%%")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 2], help="sizes")
    parser.add_argument("--name", help="no default")
    parser.add_argument("--empty", default="", help="may be empty")
    parser.add_argument("--fast", action="store_true", help="go fast")
    parser.add_argument("--no-flip", dest="flip", action="store_false", help="no flips")
    parser.add_argument("--bidirectional", action=argparse.BooleanOptionalAction, default=True, help="both ways")
    parser.add_argument("--given", default=3, help="already says it (default: three)")
    shown = " ".join(parser.format_help().split())
    for text in ("a rate of 10% (default: 0.5)", "sizes (default: 1 2)", "--name NAME no default --empty",
                 "may be empty (default: '')", "go fast --no-flip", "no flips --bidirectional",
                 "both ways (default: --bidirectional)", "already says it (default: three)"):
        assert text in shown
    assert shown.count("default:") == 5


def test_quiet_tensorflow_leaves_a_chosen_level_verbose_and_a_late_call_alone(monkeypatch):
    environ = {"TF_CPP_MIN_LOG_LEVEL": "0"}
    assert quiet_tensorflow([], environ) is False and environ == {"TF_CPP_MIN_LOG_LEVEL": "0"}
    environ = {}
    assert quiet_tensorflow(["--verbose"], environ) is False and environ == {}
    assert quiet_tensorflow([], environ) is False and environ == {}, "TensorFlow is imported in this process"


def test_onednn_is_left_as_the_user_chose_and_a_late_call_alone():
    environ = {"TF_ENABLE_ONEDNN_OPTS": "0"}
    assert use_onednn(environ) is False and environ == {"TF_ENABLE_ONEDNN_OPTS": "0"}
    environ = {}
    assert use_onednn(environ) is False and environ == {}, "TensorFlow is imported in this process"


def test_a_command_starts_tensorflow_quiet_with_onednn_and_verbose_shows_the_noise(tmp_path):
    """The mechanism alone (kvision/console.py loaded by path, so no package import runs first), through a first op.

    A recipe run's quiet start is checked on the ``kvision train fashion_mnist`` run of test_classification_recipes.py.
    """
    code = (f"import importlib.util\nspec = importlib.util.spec_from_file_location('console', {str(ROOT / 'kvision' / 'console.py')!r})\n"
            "console = importlib.util.module_from_spec(spec)\nspec.loader.exec_module(console)\n"
            "assert console.start_tensorflow([])\nimport tensorflow as tf\n"
            "from tensorflow.python.util import _pywrap_util_port\n"
            "print(float(tf.reduce_sum(tf.ones(3))), _pywrap_util_port.IsMklEnabled())")
    env = {key: value for key, value in os.environ.items() if key not in ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS")}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "3.0 True", done.stderr[-2000:]
    assert done.stderr == ""
    verbose = run_kvision("train", "fashion_mnist", "--help", "--verbose", cwd=tmp_path)
    assert verbose.returncode == 0 and verbose.stdout.startswith("usage: kvision train fashion_mnist"), verbose.stderr
    assert "cudart_stub" in verbose.stderr or "absl::InitializeLog" in verbose.stderr, \
        "--verbose shows it (so this machine shows the noise: the quiet runs prove something here)"


def test_help_and_launch_help_import_no_tensorflow(tmp_path):
    assert not imports_tensorflow("from kvision.cli import main\nmain(['--help'])", tmp_path)
    assert not imports_tensorflow("from kvision.cli import main\ntry:\n    main(['launch', '--help'])\n"
                                  "except SystemExit:\n    pass", tmp_path)
    assert not imports_tensorflow("from kvision.cli import main\nmain(['runs', '.'])", tmp_path)


def fabricate_run(runs, name, *, command, config=None, history=None, report=None):
    """A run directory as a recipe leaves it: config.json, history.csv, evaluation/report.json."""
    run = runs / name
    (run / "evaluation").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"command": command, "export_dir": "exports", **(config or {})}))
    if history:
        keys = list(history[0])
        (run / "history.csv").write_text("\n".join([",".join(keys), *(",".join(map(str, row.values())) for row in history)]))
    if report:
        (run / "evaluation" / "report.json").write_text(json.dumps(report))
    return run


def fabricate_export(folder, version, *, command, blessed):
    path = folder / str(version)
    path.mkdir(parents=True)
    (path / "evaluation.json").write_text(json.dumps({"training_command": command}))
    if blessed:
        (path / "BLESSED").write_text("")


def test_runs_lists_each_run_with_its_figures_and_export(tmp_path):
    runs = tmp_path / "runs"
    fabricate_run(runs, "fm", command="kvision train fashion_mnist --epochs 2",
                  config={"dataset": "fashion_mnist", "model": "cnn", "name": "fm_cnn"},
                  history=[{"epoch": 0, "val_accuracy": 0.8, "val_loss": 0.5},
                           {"epoch": 1, "val_accuracy": 0.85, "val_loss": 0.6}],
                  report={"accuracy": 0.8412})
    fabricate_export(tmp_path / "exports" / "fm_cnn", 7, command="kvision train fashion_mnist --epochs 2", blessed=True)
    fabricate_export(tmp_path / "exports" / "fm_cnn", 9, command="another run", blessed=True)
    fabricate_run(runs, "g2p", command="/x/recipes/g2p_cmudict.py --epochs 1",
                  config={"model": "transformer", "name": "g2p"},
                  history=[{"epoch": 0, "val_token_accuracy": 0.7, "val_loss": 1.0}],
                  report={"word_error_rate": 0.31, "bleu": 0.5})
    fabricate_export(tmp_path / "exports" / ".rejected" / "g2p", 3, command="/x/recipes/g2p_cmudict.py --epochs 1",
                     blessed=False)
    simclr = fabricate_run(runs, "ssl", command="kvision train simclr", config={"dataset": "mnist", "model": "resnet20"})
    (simclr / "pretrain").mkdir()
    (simclr / "pretrain" / "config.json").write_text("{}")  # a phase directory is no run of its own

    table = runs_table(runs, base=tmp_path).splitlines()
    assert table[0].split() == ["run", "recipe", "dataset", "model", "epochs", "best", "validation", "test", "export"]
    rows = {line.split()[0]: line for line in table[2:]}
    assert sorted(rows) == [str(runs / name) for name in ("fm", "g2p", "ssl")]
    assert rows[str(runs / "fm")].split()[1:] == ["fashion_mnist", "fashion_mnist", "cnn", "2", "val_accuracy",
                                                  "0.8500", "accuracy", "0.8412", "BLESSED", "v7"]
    assert rows[str(runs / "g2p")].split()[1:] == ["g2p_cmudict", "-", "transformer", "1", "val_token_accuracy",
                                                   "0.7000", "word_error_rate", "0.3100", "rejected", "v3"]
    assert rows[str(runs / "ssl")].split()[1:] == ["simclr", "mnist", "resnet20", "-", "-", "-", "not", "exported"]

    done = run_kvision("runs", "runs", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    shown = done.stdout.splitlines()
    assert [line.split() for line in shown[:1] + shown[2:]] == [
        line.replace(str(runs), "runs").split() for line in table[:1] + table[2:]], "relative to where it runs"


def test_models_counts_parameters_at_the_example_shape():
    rows = {row["name"]: row for row in model_rows("vae")}
    assert sorted(rows) == ["vae_decoder", "vae_encoder"]
    assert rows["vae_encoder"]["parameters"] == build("vae_encoder", (28, 28, 1)).count_params() > 0
    assert rows["vae_encoder"]["task"] == "vae" and rows["vae_encoder"]["built with"] == "(28, 28, 1)"


def config_parser():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--pairs", required=True)
    parser.add_argument("--version", type=int)
    add_run_arguments(parser)
    return parser


def test_config_round_trip_and_a_flag_given_wins(tmp_path):
    args = config_parser().parse_args(["--pairs", "p.tsv", "--epochs", "3", "--lr", "0.2", "--overwrite", "--version", "5"])
    saved = tmp_path / "config.json"
    saved.write_text(json.dumps({**vars(args), "command": "kvision train translate", "kvision": "0.1.0"}))
    again = parse_recipe_args(config_parser(), ["--config", str(saved)])
    assert (again.pairs, again.epochs, again.lr) == ("p.tsv", 3, 0.2), "the required --pairs comes from the file"
    assert again.overwrite is False and again.version is None, "never restored: deleting a run, a fixed version"
    assert parse_recipe_args(config_parser(), ["--config", str(saved), "--epochs", "5"]).epochs == 5


def preset_parser():
    parser = config_parser()
    add_preset_argument(parser, {"base": {"epochs": 30, "lr": 0.1}, "long": {"epochs": 60, "lr": 0.05}}, default="base")
    return parser


def test_a_preset_sets_defaults_that_flags_given_and_config_files_meet_in_order(tmp_path):
    assert parse_recipe_args(preset_parser(), ["--pairs", "p"]).epochs == 30
    long = parse_recipe_args(preset_parser(), ["--pairs", "p", "--preset", "long"])
    assert (long.preset, long.epochs, long.lr) == ("long", 60, 0.05)
    assert parse_recipe_args(preset_parser(), ["--pairs", "p", "--preset", "long", "--lr", "0.2"]).lr == 0.2
    saved = tmp_path / "config.json"
    saved.write_text(json.dumps({**vars(long), "lr": 0.3}))
    assert parse_recipe_args(preset_parser(), ["--config", str(saved)]).lr == 0.3, "the file's settings, as recorded"
    again = parse_recipe_args(preset_parser(), ["--config", str(saved), "--preset", "base"])
    assert (again.epochs, again.lr) == (30, 0.1), "a preset given sets every flag presets name"


def test_a_preset_is_spelled_out_in_help_and_an_unknown_one_refused(capsys):
    shown = " ".join(preset_parser().format_help().split())
    assert "--preset {base,long} named defaults, flags given override them (base: --epochs 30 --lr 0.1; " \
           "long: --epochs 60 --lr 0.05)" in shown
    with pytest.raises(SystemExit) as exited:
        parse_recipe_args(preset_parser(), ["--pairs", "p", "--preset", "longer"])
    assert exited.value.code == 2 and "argument --preset: invalid choice: 'longer'" in capsys.readouterr().err
    odd = {"epochs": 3}  # no --lr
    with pytest.raises(ValueError, match=r"preset 'odd': expected values for the flags \['epochs', 'lr'\]"):
        add_preset_argument(config_parser(), {"base": {"epochs": 30, "lr": 0.1}, "odd": odd}, default="base")
    with pytest.raises(ValueError, match=re.escape("each a flag of this recipe that takes a value. Received: ['overwrite']")):
        add_preset_argument(config_parser(), {"base": {"overwrite": True}}, default="base")  # a switch


def test_the_recipes_presets_resolve_to_their_documented_flags():
    from kvision.recipes import cifar10, fashion_mnist

    best = fashion_mnist.settings(["--preset", "best"])
    assert (best.model, best.random_erasing, best.tta, best.crop_padding) == ("wide_resnet20_2", 0.5, "flip", 2)
    assert fashion_mnist.settings([]).model == "cnn_fast" and fashion_mnist.settings([]).random_erasing == 0
    paper, fast = (parse_recipe_args(classification.build_parser("", cifar10.PRESETS["paper"], cifar10.PRESETS), argv)
                   for argv in ([], ["--preset", "fast"]))
    assert (paper.preset, paper.epochs, paper.schedule) == ("paper", 164, "piecewise")
    assert (fast.epochs, fast.schedule, fast.tta, fast.label_smoothing) == (30, "cosine", "flip", 0.1)


def test_random_erasing_takes_a_probability(capsys):
    from kvision.recipes import fashion_mnist

    assert fashion_mnist.settings(["--random-erasing", "0.25"]).random_erasing == 0.25
    with pytest.raises(SystemExit):
        fashion_mnist.settings(["--random-erasing", "1.5"])
    assert "argument --random-erasing: expected a probability in [0, 1]. Received: 1.5" in capsys.readouterr().err


@pytest.mark.parametrize("content, message", [
    ('{"epochs": 3, "momentum": 0.9, "pairs": "p"}', "settings this recipe does not have (another recipe's config.json?)"),
    ("{not json", "expected a run's config.json. Received:"),
    (None, "expected a run's config.json. Received:"),
])
def test_a_bad_config_is_refused_naming_the_file(tmp_path, capsys, content, message):
    path = tmp_path / "config.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SystemExit) as exited:
        parse_recipe_args(config_parser(), ["--config", str(path)])
    error = capsys.readouterr().err
    assert exited.value.code == 2 and message in error and str(path) in error
    assert "Received: momentum" in error if content and "momentum" in content else True


def test_runs_names_an_unreadable_run_and_still_lists_the_others(tmp_path):
    runs = tmp_path / "runs"
    fabricate_run(runs, "good", command="kvision train mnist", config={"dataset": "mnist", "model": "cnn"},
                  history=[{"epoch": 0, "val_accuracy": "NA"}, {"epoch": 1, "val_accuracy": 0.9}])
    (fabricate_run(runs, "killed", command="kvision train mnist") / "config.json").write_text('{"command": "kvis')
    (fabricate_run(runs, "listed", command="kvision train mnist") / "config.json").write_text("[1, 2]")
    (fabricate_run(runs, "bad_report", command="kvision train mnist") / "evaluation" / "report.json").write_bytes(b"\xff\xfe")

    lines = runs_table(runs, base=tmp_path).splitlines()
    assert [line.split()[0] for line in lines[2:3]] == [str(runs / "good")]
    assert lines[2].split()[4:7] == ["2", "val_accuracy", "0.9000"], "the NA epoch is left out, not fatal"
    skipped = sorted(line for line in lines if line.startswith("skipped"))
    assert [line.split(":")[0] for line in skipped] == [f"skipped {runs / name}" for name in ("bad_report", "killed", "listed")]
    assert f"{runs / 'killed' / 'config.json'} is not readable JSON" in skipped[1]
    assert f"{runs / 'listed' / 'config.json'} holds a JSON list, expected an object" in skipped[2]
    assert f"{runs / 'bad_report' / 'evaluation' / 'report.json'} is not readable JSON" in skipped[0]
