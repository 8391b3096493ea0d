"""recipes/simclr.py end to end on tiny IDX files: pretraining, probes, fine-tuning vs scratch, resuming."""

import json

import keras
import pytest

from kvision.data import labelled_subset
from tests.data.writers import write_idx_dataset
from tests.helpers import quadrant_examples
from tests.recipes.helpers import run_in_process, run_recipe, summary_of

# 256 training images of 4 classes; half of the labels ≈ 128, 7 or 8 batches of 16 an epoch: --min-steps 40 asks
# for 5 or 6 epochs, more than --finetune-epochs 2, and --max-epochs caps it at 2 (1 of them for the head).
TINY = ("--model", "cnn", "--epochs", 1, "--batch-size", 32, "--probe-epochs", 3, "--shares", 0.5, "--finetune-epochs", 2,
        "--min-steps", 40, "--max-epochs", 2, "--head-share", 0.5, "--finetune-batch-size", 16)


@pytest.fixture(scope="module")
def simclr_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("simclr")
    written = write_idx_dataset(tmp / "data", train_count=256, test_count=64, examples=quadrant_examples)
    data = written.path
    result = run_recipe("simclr.py", "--data-dir", data, *TINY, "--run-dir", tmp / "run", cwd=tmp, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp, data, result, len(labelled_subset(*written.train, 0.5, seed=0)[0])


@pytest.mark.slow
def test_recipe_records_every_phase_and_compares_the_arms(simclr_run):
    tmp, _, result, labels = simclr_run
    results = json.loads((tmp / "run" / "results.json").read_text())
    phases = results["phases"]
    assert set(phases) == {"pretrain", "probe_simclr", "probe_random", "finetune_0.5", "scratch_0.5"}
    assert all(phase["seconds"] > 0 for phase in phases.values())
    assert (phases["pretrain"]["epochs"], phases["pretrain"]["images"]) == (1, 256) and phases["pretrain"]["loss"] > 0
    assert 0 <= phases["pretrain"]["contrastive_accuracy"] <= 1
    assert phases["probe_simclr"]["test_accuracy"] >= 0.9, "the bright quadrant is linearly readable"
    for arm in ("finetune_0.5", "scratch_0.5"):
        assert (phases[arm]["labels"], phases[arm]["epochs"], phases[arm]["batch_size"]) == (labels, 2, 16)
        assert 0 <= phases[arm]["test_accuracy"] <= 1
    assert phases["finetune_0.5"]["head_epochs"] == 1  # round(0.5 × 2): the head alone, then 1 epoch of everything

    summary = results["summary"]
    assert summary["linear_probe"]["simclr"] == phases["probe_simclr"]["test_accuracy"]
    assert summary["linear_probe"]["gain_points"] == round(
        100 * (phases["probe_simclr"]["test_accuracy"] - phases["probe_random"]["test_accuracy"]), 2)
    share = summary["shares"]["0.5"]
    assert (share["finetune_accuracy"], share["scratch_accuracy"]) == (
        phases["finetune_0.5"]["test_accuracy"], phases["scratch_0.5"]["test_accuracy"])
    assert summary_of(result.stdout) == summary
    assert "linear probe: random-init encoder" in result.stdout and "fine-tuned SimCLR, 50% labels" in result.stdout

    encoder = keras.models.load_model(tmp / "run" / "pretrain" / "checkpoints" / "last.keras")
    assert encoder.name == "cnn_backbone" and len(encoder.output_shape) == 2
    assert not [layer.name for layer in encoder.layers if "projection" in layer.name]
    assert (tmp / "run" / "finetune_0.5" / "head" / "history.csv").exists()
    assert (tmp / "run" / "finetune_0.5" / "finetune" / "checkpoints" / "last.keras").exists()
    assert (tmp / "run" / "scratch_0.5" / "checkpoints" / "last.keras").exists()
    assert json.loads((tmp / "run" / "config.json").read_text())["temperature"] == 0.5


@pytest.mark.slow
def test_a_rerun_skips_finished_phases_and_other_settings_are_refused(simclr_run, monkeypatch):
    tmp, data, _, _ = simclr_run
    before = json.loads((tmp / "run" / "results.json").read_text())
    rerun = run_in_process("simclr.py", "--data-dir", data, *TINY, "--run-dir", tmp / "run", cwd=tmp,
                           monkeypatch=monkeypatch)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "run/pretrain: training finished earlier (1 epochs); loading last.keras" in rerun.stdout
    for key in before["phases"]:
        assert f"{key}: done earlier, skipped" in rerun.stdout
    assert "Epoch 1/" not in rerun.stdout, "nothing is trained again"
    assert json.loads((tmp / "run" / "results.json").read_text()) == before

    changed = run_in_process("simclr.py", "--data-dir", data, *TINY, "--temperature", 0.2, "--run-dir", tmp / "run",
                             cwd=tmp, monkeypatch=monkeypatch)
    assert changed.returncode != 0 and "Traceback" not in changed.stderr
    assert "holds a run with other settings" in changed.stderr
    assert "Received (recorded → given): temperature 0.5 → 0.2" in changed.stderr


def test_user_mistakes_get_one_line_and_no_output(tmp_path, monkeypatch):
    result = run_in_process("simclr.py", "--model", "resnet21", "--run-dir", tmp_path / "run", cwd=tmp_path,
                            monkeypatch=monkeypatch)
    assert result.returncode != 0 and "error: Unknown classifier model name. Did you mean" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "run").exists()


def test_recipe_documents_its_flags(tmp_path, monkeypatch):
    result = run_in_process("simclr.py", "--help", cwd=tmp_path, monkeypatch=monkeypatch)
    assert result.returncode == 0
    for flag in ("--model", "--epochs", "--temperature", "--shares", "--min-steps", "--max-epochs", "--probe-epochs",
                 "--mixed-precision", "--run-dir"):
        assert flag in result.stdout
