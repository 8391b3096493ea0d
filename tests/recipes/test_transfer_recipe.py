"""recipes/transfer.py end to end on tiny IDX files: pretrain, fine-tune vs scratch per share, resume."""

import json

import keras
import pytest

from kvision.data import labelled_subset, select_classes
from tests.data.writers import write_idx_dataset
from tests.helpers import quadrant_examples
from tests.recipes.helpers import run_in_process

# Quadrant images have labels 0..3: pretrain on the top quadrants, transfer to the bottom ones.
ARGS = ["--source-classes", 0, 1, "--target-classes", 2, 3, "--shares", 0.5, "--pretrain-epochs", 1,
        "--head-epochs", 1, "--epochs", 1, "--min-steps", 8, "--max-scale", 2, "--batch-size", 32,
        "--validation-size", 20, "--head-lr", 0.1, "--finetune-lr", 0.01, "--run-dir", "run"]


@pytest.fixture(scope="module")
def transfer_run(tmp_path_factory):
    """The script run in this process (its four trainings are the cost, not a fresh interpreter)."""
    tmp = tmp_path_factory.mktemp("transfer")
    written = write_idx_dataset(tmp / "data", train_count=200, test_count=40, examples=quadrant_examples)
    with pytest.MonkeyPatch.context() as monkeypatch:
        result = run_in_process("transfer.py", "--data-dir", written.path, *ARGS, cwd=tmp, monkeypatch=monkeypatch)
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp, written, result


@pytest.mark.slow
def test_results_hold_both_runs_of_every_share(transfer_run):
    tmp, written, result = transfer_run
    results = json.loads((tmp / "run" / "results.json").read_text())
    target_train = select_classes(*written.train, [2, 3])
    test_images, test_labels = select_classes(*written.test, [2, 3])
    assert results["dataset"] == "fashion_mnist" and results["model"] == "cnn"
    assert results["target_classes"] == ["Pullover", "Dress"] and results["test_images"] == len(test_labels)
    assert results["pretrain"]["classes"] == ["T-shirt/top", "Trouser"]
    assert results["pretrain"]["images"] == len(select_classes(*written.train, [0, 1])[1]) - 20

    (half,) = results["shares"]
    assert half["share"] == 0.5 and half["batch_size"] == 32
    assert half["labels"] == len(labelled_subset(*target_train, 0.5, seed=0)[1]) == len(target_train[1]) // 2
    # Under 64 labels make 1 step of 32 an epoch, 2 in the 1 + 1 epochs: scaled by min(2, ceil(8 / 2)) = 2.
    assert 32 <= half["labels"] < 64
    assert half["epochs"] == {"head": 2, "finetune": 2, "scratch": 4}
    assert half["gain"] == pytest.approx(half["finetune_accuracy"] - half["scratch_accuracy"])
    assert set(half["seconds"]) == {"finetune", "scratch"}

    share_dir = tmp / "run" / "share_0.5"
    for key, run in (("finetune_accuracy", share_dir / "finetune" / "finetune"), ("scratch_accuracy", share_dir / "scratch")):
        model = keras.saving.load_model(run / "checkpoints" / "last.keras")
        predictions = model.predict(test_images.astype("float32"), verbose=0).argmax(axis=1)
        assert half[key] == pytest.approx(float((predictions == test_labels).mean())), key
    assert "fine-tune  scratch" in result.stdout and "  50.0%" in result.stdout


@pytest.mark.slow
def test_a_rerun_loads_what_is_finished_and_trains_nothing(transfer_run, monkeypatch):
    tmp, written, _ = transfer_run
    before = (tmp / "run" / "results.json").read_text()
    histories = {path: path.stat().st_mtime_ns for path in (tmp / "run").rglob("history.csv")}
    assert len(histories) == 4  # pretrain, and the share's head, finetune and scratch runs
    result = run_in_process("transfer.py", "--data-dir", written.path, *ARGS, cwd=tmp, monkeypatch=monkeypatch)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "pretrain: training finished earlier (1 epochs); loading best.keras" in result.stdout
    assert (tmp / "run" / "results.json").read_text() == before
    assert {path: path.stat().st_mtime_ns for path in histories} == histories


@pytest.mark.slow
def test_a_rerun_with_other_settings_is_refused(transfer_run, monkeypatch):
    tmp, written, _ = transfer_run
    result = run_in_process("transfer.py", "--data-dir", written.path, *ARGS, "--epochs", 2,
                            cwd=tmp, monkeypatch=monkeypatch)
    assert result.returncode == 1
    assert "error: run holds a run with other settings; run it with its own, use another --run-dir, or add " \
           "--overwrite to delete it and start afresh. Expected the recorded settings. Received (recorded → given): " \
           "epochs 1 → 2" in result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "resnet21"], "error: Unknown classifier model name. Did you mean resnet32, resnet20"),
        (["--trainable", "most"], "error: trainable is 'all', 'head' or a number of stages N >= 0. Received: trainable='most'"),
        (["--shares", 0.5, 1.5], "error: Expected a share in (0, 1]. Received: share=1.5"),
        (["--target-classes", 3, 4], "of which [4] have no examples"),
    ],
)
def test_user_mistakes_get_one_line_and_no_output(tmp_path, args, message, monkeypatch):
    data = write_idx_dataset(tmp_path / "data", train_count=40, test_count=8, examples=quadrant_examples).path
    result = run_in_process("transfer.py", "--data-dir", data, "--source-classes", 0, 1, "--target-classes", 2, 3,
                            *args, "--run-dir", tmp_path / "run", cwd=tmp_path, monkeypatch=monkeypatch)
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()
