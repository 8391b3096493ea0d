"""``kvision runs`` and ``kvision models``: what the run directories hold, and what the registry builds.

A run directory is one a recipe wrote (config.json, history.csv,
evaluation/…); its row says which recipe ran it on what, how far it got,
its best validation and its test figure, and whether its export was
blessed. Reading runs needs no TensorFlow; listing models builds each one.
"""

import argparse
import csv
import json
import shlex
from pathlib import Path

from kvision.console import HelpFormatter, format_table, prog_name
from kvision.recipes import RECIPES

RUN_COLUMNS = ("run", "recipe", "dataset", "model", "epochs", "best validation", "test", "export")
# Validation figures by preference, and whether larger is better.
VALIDATION_METRICS = (("val_accuracy", True), ("val_token_accuracy", True), ("val_elbo", True), ("val_loss", False))
# Test figures a recipe's evaluation files hold, by preference: (file under evaluation/, key).
TEST_METRICS = (("report.json", "accuracy"), ("report.json", "word_error_rate"), ("report.json", "bleu_4"),
                ("quality.json", "frechet_distance"), ("quality.json", "elbo"))
MODEL_COLUMNS = ("name", "task", "parameters", "built with")
# Positional arguments ``kvision models`` builds each task's models with (a builder's registry entry has none).
TASK_EXAMPLES = {
    "classifier": ((32, 32, 3), 10),
    "gan": ((28, 28, 1), 10),
    "vae": ((28, 28, 1),),
    "seq2seq": (64, 64),
    "captioning": ((64, 64, 1), 5000),
}
IMAGENET_EXAMPLE = ((224, 224, 3), 1000)


class UnreadableRun(Exception):
    """A run directory whose config.json, history.csv or evaluation files cannot be read; says which file and why."""


def read_json(path):
    """The JSON object in ``path``; ``UnreadableRun`` naming the file when it is not one (a half-written or foreign file)."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as error:  # ValueError: not JSON, or not UTF-8
        raise UnreadableRun(f"{path} is not readable JSON ({error})") from error
    if not isinstance(value, dict):
        raise UnreadableRun(f"{path} holds a JSON {type(value).__name__}, expected an object")
    return value


def recipe_of(command):
    """The recipe a recorded command line ran: ``kvision train NAME …`` or ``…/NAME.py …``; None if neither."""
    words = shlex.split(command or "") if command else []
    if words[:2] == ["kvision", "train"] and len(words) > 2:
        return words[2]
    name = Path(words[0]).stem if words else None
    return name if name in RECIPES or name == "seq2seq" else None


def read_history(path):
    """The rows of a history.csv (Keras' CSVLogger), or [] when there is none."""
    if not path.is_file():
        return []
    try:
        with path.open(newline="") as f:
            return list(csv.DictReader(f))
    except (OSError, ValueError, csv.Error) as error:
        raise UnreadableRun(f"{path} is not a readable CSV history ({error})") from error


def best_validation(rows):
    """``"val_accuracy 0.9123"``: the best epoch's figure of the first ``VALIDATION_METRICS`` the history has.

    Cells that are no number (Keras writes "NA" for a metric missing that epoch) are left out.
    """
    for key, larger in VALIDATION_METRICS:
        values = [value for value in (number(row.get(key)) for row in rows) if value is not None]
        if values:
            return f"{key} {(max if larger else min)(values):.4f}"
    return None


def number(text):
    """``text`` as a float, or None when it is empty or no number."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return None if value != value else value  # NaN: no figure


def test_figure(run_dir):
    """``"accuracy 0.9012"``: the first of ``TEST_METRICS`` the run's evaluation files hold."""
    for name, key in TEST_METRICS:
        path = run_dir / "evaluation" / name
        if path.is_file():
            value = read_json(path).get(key)
            if isinstance(value, (int, float)):
                return f"{key} {value:.4f}"
    return None


def export_status(config, base):
    """``BLESSED v5``, ``rejected v6`` or ``not exported``: the newest version of the run's export.

    The export is ``<export_dir>/<name>/<version>`` (published) or
    ``<export_dir>/.rejected/<name>/<version>``, ``export_dir`` as the run's
    config.json records it, relative to ``base`` (the directory the recipe
    ran in). Versions whose evaluation.json records this run's command come
    first.
    """
    if not config.get("name") or not config.get("export_dir"):
        return "not exported"
    export_dir = base / config["export_dir"]
    found = []
    for state, folder in (("BLESSED", export_dir / config["name"]), ("rejected", export_dir / ".rejected" / config["name"])):
        for version in folder.glob("*") if folder.is_dir() else ():
            if version.name.isdigit():
                evaluation = version / "evaluation.json"
                command = read_json(evaluation).get("training_command") if evaluation.is_file() else None
                blessed = state == "BLESSED" and (version / "BLESSED").exists()
                label = "BLESSED" if blessed else "published, not blessed" if state == "BLESSED" else "rejected"
                found.append((command == config.get("command"), int(version.name), label))
    if not found:
        return "not exported"
    _, version, label = max(found)
    return f"{label} v{version}"


def run_row(run_dir, *, base):
    """One row of ``kvision runs`` for the run directory ``run_dir`` (which holds config.json)."""
    config = read_json(run_dir / "config.json")
    history = read_history(run_dir / "history.csv")
    model = next((config[k] for k in ("backbone", "model", "student") if config.get(k)), None)
    return {
        "run": str(run_dir),
        "recipe": recipe_of(config.get("command")),
        "dataset": config.get("dataset") or (Path(config["pairs"]).stem if config.get("pairs") else None),
        "model": model,
        "epochs": len(history) if history else None,
        "best validation": best_validation(history),
        "test": test_figure(run_dir),
        "export": export_status(config, base),
    }


def find_runs(directory):
    """Run directories below ``directory`` (holding config.json), a run's own phase directories aside; sorted."""
    directory = Path(directory)
    runs = sorted({path.parent for path in directory.rglob("config.json")})
    return [run for run in runs if not any(other in run.parents for other in runs)]


def runs_table(directory="runs", *, base=None):
    """The text table of every run below ``directory``; ``base`` resolves relative export dirs (default: the cwd).

    A run whose files cannot be read is not a row: a line after the table
    names it and the file at fault, and the other runs are still listed.
    """
    rows, skipped = [], []
    for run in find_runs(directory):
        try:
            rows.append(run_row(run, base=Path(base or ".")))
        except UnreadableRun as error:
            skipped.append(f"skipped {run}: {error}")
    if not rows and not skipped:
        return f"no run directories (with a config.json) below {directory}"
    return "\n".join(([format_table(rows, RUN_COLUMNS)] if rows else []) + skipped)


def model_rows(task=None):
    """A row per registered model (of ``task``): its name, task and parameters when built with ``TASK_EXAMPLES``."""
    from kvision.models import build, list_models  # imports TensorFlow: only for this command
    from kvision.models.resnet import IMAGENET_RESNETS

    rows = []
    for each in [task] if task else TASK_EXAMPLES:
        for name in list_models(each):
            example = IMAGENET_EXAMPLE if name in IMAGENET_RESNETS else TASK_EXAMPLES[each]
            rows.append({"name": name, "task": each, "parameters": build(name, *example).count_params(),
                         "built with": ", ".join(map(str, example))})
    return rows


def runs_command(argv=None):
    """kvision runs [DIR]: a table of the run directories below DIR."""
    parser = argparse.ArgumentParser(prog=prog_name("kvision runs"), description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("directory", nargs="?", default="runs", metavar="DIR", help="where the runs are (default: runs)")
    args = parser.parse_args(argv)
    print(runs_table(args.directory))


def models_command(argv=None):
    """kvision models: the registered models, their task and parameters."""
    parser = argparse.ArgumentParser(prog=prog_name("kvision models"), description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--task", choices=sorted(TASK_EXAMPLES), help="only the models of this task")
    args = parser.parse_args(argv)
    print(format_table(model_rows(args.task), MODEL_COLUMNS))
