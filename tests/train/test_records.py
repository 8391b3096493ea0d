"""A recipe's run directory: settings checked against config.json, results.json saved whole, finished phases skipped."""

import argparse
import json

import pytest

from kvision.errors import ModelError
from kvision.recipes.common import add_export_arguments, add_run_arguments, untrained_settings
from kvision.train.records import open_run, run_phase, save_results, write_config

SETTINGS = {"epochs": 2, "lr": 0.1, "shares": [0.1], "run_dir": "run"}
WORKER_1 = json.dumps({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}})


def test_a_new_run_has_no_results_and_records_its_settings(tmp_path, monkeypatch):
    monkeypatch.setattr("sys.argv", ["recipe.py", "--epochs", "2"])
    assert open_run(tmp_path / "run", SETTINGS) == {}
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config == {**SETTINGS, "command": "recipe.py --epochs 2", "kvision": config["kvision"]}
    assert config["kvision"]


def test_a_resumed_run_gets_its_results_and_may_change_only_what_it_is_told(tmp_path):
    open_run(tmp_path, SETTINGS)
    save_results(tmp_path, {"phases": {"a": {"seconds": 1.0}}})
    more_shares = {**SETTINGS, "shares": [0.1, 0.5]}
    assert open_run(tmp_path, more_shares, may_change=("shares",)) == {"phases": {"a": {"seconds": 1.0}}}
    config = (tmp_path / "config.json").read_bytes()
    with pytest.raises(ModelError, match=r"holds a run with other settings; run it with its own, use another --run-dir, "
                                         r"or add --overwrite to delete it and start afresh\. .* Received \(recorded → "
                                         r"given\): lr 0\.1 → 0\.2, shares \[0\.1, 0\.5\] → \[0\.1\]$"):
        open_run(tmp_path, {**SETTINGS, "lr": 0.2})
    assert (tmp_path / "config.json").read_bytes() == config, "a refused run writes nothing"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["config.json", "results.json"]


def test_an_older_run_without_a_new_flag_resumes_while_that_flag_keeps_its_default(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"epochs": 2, "lr": 0.1, "command": "recipe.py"}))
    defaults = {"epochs": 30, "lr": 0.1, "cutout": 0}
    assert open_run(tmp_path, {"epochs": 2, "lr": 0.1, "cutout": 0}, defaults=defaults) == {}
    assert json.loads((tmp_path / "config.json").read_text())["cutout"] == 0, "recorded from now on"
    (tmp_path / "config.json").write_text(json.dumps({"epochs": 2, "lr": 0.1}))
    with pytest.raises(ModelError, match=r"Received \(recorded → given\): cutout 0 → 8$"):
        open_run(tmp_path, {"epochs": 2, "lr": 0.1, "cutout": 8}, defaults=defaults)
    with pytest.raises(ModelError, match=r"cutout None → 0$"):
        open_run(tmp_path, {"epochs": 2, "lr": 0.1, "cutout": 0})  # without defaults: refused, as before


def test_a_switch_that_became_a_choice_resumes_with_its_old_spelling(tmp_path):
    respelled = {"mixed_precision": {True: "float16", False: None}}
    for old, new in ((True, "float16"), (False, None)):
        (tmp_path / "config.json").write_text(json.dumps({"epochs": 2, "mixed_precision": old}))
        assert open_run(tmp_path, {"epochs": 2, "mixed_precision": new}, respelled=respelled) == {}
    (tmp_path / "config.json").write_text(json.dumps({"epochs": 2, "mixed_precision": True}))
    with pytest.raises(ModelError, match=r"mixed_precision 'float16' → 'bfloat16'$"):
        open_run(tmp_path, {"epochs": 2, "mixed_precision": "bfloat16"}, respelled=respelled)
    (tmp_path / "config.json").write_text(json.dumps({"epochs": 1, "mixed_precision": None}))
    with pytest.raises(ModelError, match=r"epochs 1 → 0$"):  # only a recorded true/false is respelled
        open_run(tmp_path, {"epochs": 0, "mixed_precision": None}, respelled={"epochs": {False: 0}})


def test_overwrite_deletes_the_earlier_run_and_starts_afresh(tmp_path, monkeypatch):
    open_run(tmp_path, SETTINGS)
    save_results(tmp_path, {"a": 1})
    (tmp_path / "logs" / "train").mkdir(parents=True)
    (tmp_path / "history.csv").write_text("epoch,loss\n0,1.0\n")
    monkeypatch.setenv("TF_CONFIG", WORKER_1)
    assert open_run(tmp_path, {**SETTINGS, "lr": 0.2}, overwrite=True) == {}
    assert (tmp_path / "history.csv").exists(), "only the chief deletes"
    monkeypatch.delenv("TF_CONFIG")
    assert open_run(tmp_path, {**SETTINGS, "lr": 0.2}, overwrite=True) == {}
    assert [path.name for path in tmp_path.iterdir()] == ["config.json"]
    assert json.loads((tmp_path / "config.json").read_text())["lr"] == 0.2


def test_results_are_replaced_whole_and_only_by_the_chief(tmp_path, monkeypatch):
    save_results(tmp_path, {"a": 1})
    save_results(tmp_path, {"b": 2})
    assert json.loads((tmp_path / "results.json").read_text()) == {"b": 2}
    assert [path.name for path in tmp_path.iterdir()] == ["results.json"], "no temporary file left"
    monkeypatch.setenv("TF_CONFIG", WORKER_1)
    save_results(tmp_path, {"c": 3})
    write_config(tmp_path / "worker", SETTINGS)
    assert json.loads((tmp_path / "results.json").read_text()) == {"b": 2}
    assert (tmp_path / "worker").is_dir() and not (tmp_path / "worker" / "config.json").exists()


def test_a_finished_phase_is_skipped_and_a_new_one_timed_and_saved(tmp_path, capsys):
    results = {"phases": {"done": {"accuracy": 0.5, "seconds": 3.0}}}
    calls = []

    def phase():
        calls.append(1)
        return {"accuracy": 0.9}

    assert run_phase(tmp_path, results, "done", phase, phases=results["phases"]) == {"accuracy": 0.5, "seconds": 3.0}
    assert "done: done earlier, skipped" in capsys.readouterr().out and not calls
    record = run_phase(tmp_path, results, "new", phase, phases=results["phases"], start=0.0)
    assert calls == [1] and record["accuracy"] == 0.9 and record["seconds"] > 1e9, "timed from start"
    assert json.loads((tmp_path / "results.json").read_text()) == results
    run_phase(tmp_path, results, "top", lambda: {"x": 1})
    assert results["top"]["x"] == 1 and 0 <= results["top"]["seconds"] < 60


def test_the_export_group_and_run_flags_change_no_training():
    parser = argparse.ArgumentParser()
    run = parser.add_argument_group("run")
    run.add_argument("--run-dir")
    add_run_arguments(run)
    add_export_arguments(parser)
    parser.add_argument("--lr", type=float)
    free = untrained_settings(parser, "robustness_eps")
    assert {"export_dir", "version", "tflite", "int8_io", "allow_select_ops", "bless_min_accuracy",
            "push_only_if_blessed", "keep_versions", "run_dir", "overwrite", "verbose", "robustness_eps"} <= set(free)
    assert "lr" not in free
