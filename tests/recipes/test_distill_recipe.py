"""recipes/distill.py end to end on tiny IDX files: four phases, their measurements, and a re-run that trains nothing."""

import json

import keras
import numpy as np
import pytest

from kvision.export.tflite import TFLiteClassifier
from kvision.train.prune import sparsity
from tests.data.writers import write_idx_dataset
from tests.helpers import quadrant_examples
from tests.recipes.helpers import run_in_process, run_recipe

PHASES = ("teacher", "student", "distilled", "pruned")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("distill")
    written = write_idx_dataset(tmp / "data", train_count=256, test_count=64, examples=quadrant_examples)
    common = ["--data-dir", written.path, "--student", "cnn", "--teacher-model", "cnn", "--teacher-epochs", 1,
              "--student-epochs", 1, "--prune-epochs", 1, "--batch-size", 32, "--validation-size", 32,
              "--sparsity", 0.8, "--calibration-size", 32, "--run-dir", tmp / "run"]
    first = run_recipe("distill.py", *common, cwd=tmp)
    assert first.returncode == 0, first.stderr[-3000:]
    return tmp, written, common, first


@pytest.mark.slow
def test_four_models_are_trained_measured_and_tabled(setup):
    tmp, written, _, first = setup
    results = json.loads((tmp / "run" / "results.json").read_text())
    models = results["models"]
    assert list(models) == list(PHASES) and results["dataset"] == "fashion_mnist"
    assert results["teacher"] == str(tmp / "run" / "teacher" / "checkpoints" / "best.keras")
    assert len({m["parameters"] for m in models.values()}) == 1, "a CNN teaching a CNN (a quick run)"
    assert models["pruned"]["sparsity"] == pytest.approx(0.8, abs=0.01)
    assert models["distilled"]["sparsity"] < 0.01
    assert models["pruned"]["int8_tflite_gzip_bytes"] < 0.7 * models["distilled"]["int8_tflite_gzip_bytes"]
    assert models["pruned"]["weights_gzip_bytes"] < 0.6 * models["distilled"]["weights_gzip_bytes"]
    assert all(m["int8_latency_ms_batch1"] > 0 for m in models.values())

    images, labels = written.test
    pruned = keras.saving.load_model(tmp / "run" / "pruned" / "checkpoints" / "last.keras")
    assert sparsity(pruned) == models["pruned"]["sparsity"]
    accuracy = np.mean(np.argmax(pruned.predict(images.astype("float32"), verbose=0), -1) == labels)
    assert models["pruned"]["test_accuracy"] == pytest.approx(accuracy)
    for phase in PHASES:
        int8 = TFLiteClassifier(tmp / "run" / phase / "model_int8.tflite")
        accuracy = np.mean(np.argmax(int8.logits(images), -1) == labels)
        assert models[phase]["int8_test_accuracy"] == pytest.approx(accuracy), phase
        assert models[phase]["int8_tflite_bytes"] == (tmp / "run" / phase / "model_int8.tflite").stat().st_size
    config = json.loads((tmp / "run" / "config.json").read_text())
    assert (config["student"], config["temperature"], config["alpha"], config["sparsity"]) == ("cnn", 4.0, 0.1, 0.8)
    table = first.stdout[first.stdout.index("model "):]
    assert [line.split()[0] for line in table.splitlines()[1:5]] == list(PHASES)


@pytest.mark.slow
def test_a_rerun_with_the_trained_teacher_retrains_nothing(setup, monkeypatch):
    tmp, _, common, _ = setup
    before = json.loads((tmp / "run" / "results.json").read_text())["models"]
    teacher = tmp / "run" / "teacher" / "checkpoints" / "best.keras"
    # In this process: the fixture's run proves the command; this one what a finished run directory does.
    again = run_in_process("distill.py", *common, "--teacher", teacher, cwd=tmp, monkeypatch=monkeypatch)
    assert again.returncode == 0, again.stderr[-3000:]
    for phase in PHASES[1:]:
        assert f"run/{phase}: training finished earlier (1 epochs)" in again.stdout
    assert "Epoch 1/" not in again.stdout
    after = json.loads((tmp / "run" / "results.json").read_text())["models"]
    for phase in PHASES:
        for key in ("test_accuracy", "int8_test_accuracy", "parameters", "sparsity", "int8_tflite_bytes"):
            assert after[phase][key] == before[phase][key], (phase, key)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--student", "resnet21"], "error: Unknown classifier model name. Did you mean resnet32, resnet20"),
        (["--teacher", "missing.keras"], "error: Expected a teacher classifier saved as a .keras file. Received: missing.keras"),
        (["--alpha", "1.5"], "error: alpha must be in [0, 1]. Received: alpha=1.5"),
        (["--sparsity", "1"], "error: Expected 0 <= initial_sparsity <= target_sparsity < 1. Received: initial_sparsity=0.0, "
                              "target_sparsity=1.0"),
    ],
)
@pytest.mark.slow
def test_user_mistakes_get_one_line_and_no_output(setup, args, message, monkeypatch):
    tmp, written, _, _ = setup
    result = run_in_process("distill.py", "--data-dir", written.path, "--validation-size", 32, *args,
                            "--run-dir", tmp / "bad", cwd=tmp, monkeypatch=monkeypatch)
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp / "bad").exists()
