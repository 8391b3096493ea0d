"""The recipes, end to end on tiny files in the real formats, as a user runs them."""

import json
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from kvision.errors import ExportError
from tests.data.writers import CIFAR10_NAMES, make_tar_gz, write_cifar10_binary, write_idx_dataset
from tests.helpers import quadrant_examples
from tests.recipes.helpers import ROOT, run_in_process, run_recipe, summary_of


def fashion_args(tmp, run_dir=None, exports=None):
    """The fixture's command line, with another run or export directory if given."""
    return ["--data-dir", tmp / "data", "--epochs", 3, "--batch-size", 32, "--validation-size", 32, "--lr", 0.05,
            "--crop-padding", 2, "--run-dir", run_dir or tmp / "run", "--export-dir", exports or tmp / "exports",
            "--version", 5, "--tflite", "float32"]


def files(directory):
    """Every file below ``directory`` with its size and modification time: what a run that writes nothing keeps."""
    return {path: (path.stat().st_size, path.stat().st_mtime_ns) for path in directory.rglob("*")}


@pytest.fixture(scope="module")
def fashion_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fashion")
    write_idx_dataset(tmp / "data", train_count=256, test_count=64, examples=quadrant_examples)
    result = run_recipe("fashion_mnist.py", *fashion_args(tmp), cwd=tmp)
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp, result


@pytest.fixture
def fashion_copy(fashion_run, tmp_path):
    """A copy of the fixture's finished run directory, for a test that changes it."""
    shutil.copytree(fashion_run[0] / "run", tmp_path / "run")
    return fashion_run[0], tmp_path / "run"


@pytest.mark.slow
def test_fashion_mnist_recipe_trains_evaluates_and_exports(fashion_run):
    tmp, result = fashion_run
    summary = summary_of(result.stdout)
    report = json.loads((tmp / "run" / "evaluation" / "report.json").read_text())
    assert summary["test_accuracy"] == report["accuracy"] >= 0.5, "quadrants are learnable in 3 epochs"
    assert report["class_names"][0] == "T-shirt/top" and report["num_examples"] == 64
    config = json.loads((tmp / "run" / "config.json").read_text())
    assert config["model"] == "cnn" and config["epochs"] == 3
    for name in ("confusion_matrix.png", "training_curves.png"):
        assert (tmp / "run" / "evaluation" / name).exists()

    export = tmp / "exports" / "fashion_mnist_cnn" / "5"
    assert summary["saved_model"] == str(export) and summary["blessed"] is True
    assert (export / "BLESSED").exists() and (export / "tflite" / "fashion_mnist_cnn_float32.tflite").exists()
    assert "SavedModel serving_default max abs Δlogit" in result.stdout, "the parity table is printed"
    evaluation = json.loads((export / "evaluation.json").read_text())
    assert evaluation["metrics"]["accuracy"] == report["accuracy"]
    assert evaluation["metrics"]["top5_accuracy"] == report["top5_accuracy"]
    assert evaluation["training_command"].startswith(str(ROOT / "recipes" / "fashion_mnist.py"))
    serving = tf.saved_model.load(str(export)).signatures["serve_images"]
    best = keras.models.load_model(tmp / "run" / "checkpoints" / "best.keras")
    images = np.random.default_rng(0).integers(0, 255, (4, 28, 28, 1)).astype("uint8")
    expected = best.predict(images.astype("float32"), verbose=0)
    np.testing.assert_allclose(serving(images=tf.constant(images))["logits"], expected, atol=1e-4)


@pytest.mark.slow
def test_a_rerun_with_other_training_settings_is_refused_and_writes_nothing(fashion_run, monkeypatch):
    tmp, _ = fashion_run
    before = files(tmp)
    result = run_in_process("fashion_mnist.py", *fashion_args(tmp), "--lr", 0.2, "--model", "resnet20", "--version", 6,
                            cwd=tmp, monkeypatch=monkeypatch)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    line = next(line for line in result.stderr.splitlines() if line.startswith("error:"))
    assert line.startswith(f"error: {tmp / 'run'} holds a run with other settings; run it with its own, use another "
                           "--run-dir, or add --overwrite to delete it and start afresh.")
    assert line.endswith("Received (recorded → given): lr 0.05 → 0.2, model 'cnn' → 'resnet20'"), "not --version"
    assert files(tmp) == before


@pytest.mark.slow
def test_a_finished_run_whose_export_failed_exports_again_without_training(fashion_copy, monkeypatch):
    tmp, run_dir = fashion_copy
    history = (run_dir / "history.csv").read_text()

    def full_disk(*args, **kwargs):
        raise ExportError("No space left on device. Received: a full disk")

    with monkeypatch.context() as patched:
        patched.setattr("kvision.recipes.common.export_classifier", full_disk)
        failed = run_in_process("fashion_mnist.py", *fashion_args(tmp, run_dir), cwd=tmp, monkeypatch=patched)
    assert failed.returncode == 1 and "error: No space left on device" in failed.stderr
    result = run_in_process("fashion_mnist.py", *fashion_args(tmp, run_dir, run_dir.parent / "exports"),
                            "--version", 6, cwd=tmp, monkeypatch=monkeypatch)
    assert result.returncode == 0, result.stderr[-3000:]
    for run in (failed, result):
        assert f"{run_dir}: training finished earlier (3 epochs); loading best.keras" in run.stdout
    assert (run_dir / "history.csv").read_text() == history, "no epoch was trained"
    assert (run_dir.parent / "exports" / "fashion_mnist_cnn" / "6" / "BLESSED").exists()


@pytest.mark.slow
def test_overwrite_deletes_the_run_and_trains_afresh(fashion_copy, monkeypatch):
    tmp, run_dir = fashion_copy
    earlier = {path.name for path in (run_dir / "logs" / "train").iterdir()}
    result = run_in_process("fashion_mnist.py", *fashion_args(tmp, run_dir, run_dir.parent / "exports"), "--epochs", 1,
                            "--overwrite", "--tflite", "", cwd=tmp, monkeypatch=monkeypatch)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"{run_dir}: --overwrite: the earlier run was deleted" in result.stdout
    assert (run_dir / "history.csv").read_text().count("\n") == 2, "a header and the one epoch trained"
    assert json.loads((run_dir / "config.json").read_text())["epochs"] == 1
    events = {path.name for path in (run_dir / "logs" / "train").iterdir()}
    assert earlier and events and earlier.isdisjoint(events), "the old run's TensorBoard events are gone"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "resnet21"], "error: Unknown classifier model name. Did you mean resnet32, resnet20"),
        (["--data-dir", "/nonexistent/fashion"], "error: Could not find the fashion_mnist dataset. Tried:"),
        (["--model", "resnet18"], "error: ResNet-18 needs inputs of at least 32×32 pixels"),
        (["--tflite", "float32,int4"], "error: Expected TFLite variants among float32, float16, dynamic, int8. Received: int4"),
        (["--robustness-eps", "0.1", "-0.1"], "error: epsilon is a fraction of the 0..255 range and must be ≥ 0."),
    ],
)
def test_user_mistakes_get_one_line_and_no_output(tmp_path, args, message, monkeypatch):
    result = run_in_process("fashion_mnist.py", *args, "--no-download", "--export-dir", tmp_path / "exports",
                            "--run-dir", tmp_path / "run", cwd=tmp_path, monkeypatch=monkeypatch)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "exports").exists()
    assert not (tmp_path / "run").exists()


def test_every_recipe_documents_its_flags(tmp_path, monkeypatch):
    for script in ("fashion_mnist.py", "cifar10.py", "classification.py"):
        result = run_in_process(script, "--help", cwd=tmp_path, monkeypatch=monkeypatch)
        assert result.returncode == 0, result.stderr
        for flag in ("--data-dir", "--model", "--epochs", "--mixed-precision", "--xla", "--version", "--tflite",
                     "--bless-min-accuracy", "--push-unblessed", "--keep-versions"):
            assert flag in result.stdout


@pytest.mark.slow
def test_adversarial_training_and_robustness_flags(tmp_path):
    data = write_idx_dataset(tmp_path / "data", train_count=128, test_count=48, examples=quadrant_examples).path
    result = run_recipe(
        "fashion_mnist.py", "--data-dir", data, "--epochs", 1, "--batch-size", 32, "--validation-size", 32,
        "--adversarial-eps", 0.05, "--adversarial-steps", 1, "--robustness-eps", 0, 0.1, "--robustness-examples", 40,
        "--run-dir", tmp_path / "run", "--export-dir", tmp_path / "exports", "--version", 1, "--tflite", "",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = summary_of(result.stdout)
    evaluation = tmp_path / "run" / "evaluation"
    robustness = json.loads((evaluation / "robustness.json").read_text())
    assert robustness["num_examples"] == 40 and robustness["epsilons"] == [0.0, 0.1]
    assert summary["robustness"] == {
        "examples": 40,
        "fgsm_accuracy": dict(zip(["0", "0.1"], robustness["fgsm_accuracy"])),
        "pgd_accuracy": dict(zip(["0", "0.1"], robustness["pgd_accuracy"])),
        "report": str(tmp_path / "run" / "evaluation" / "robustness.json"),
    }
    assert summary["robustness"]["pgd_accuracy"]["0"] == robustness["clean_accuracy"]
    assert (evaluation / "robustness.png").exists() and (evaluation / "report.json").exists()
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (config["adversarial_eps"], config["adversarial_steps"], config["adversarial_step_size"]) == (0.05, 1, None)
    best = keras.models.load_model(tmp_path / "run" / "checkpoints" / "best.keras")
    assert type(best).__name__ == "Functional" and best.get_layer("logits").units == 10


@pytest.mark.slow
def test_cifar10_recipe_on_a_tiny_binary_archive(tmp_path):
    release = write_cifar10_binary(tmp_path / "release", per_batch=50, test_count=50, examples=quadrant_examples)
    archive = make_tar_gz(release.path, tmp_path / "cifar-10-binary.tar.gz")
    result = run_recipe(
        "cifar10.py", "--data-dir", archive, "--epochs", 1, "--batch-size", 50,
        "--run-dir", tmp_path / "run", "--export-dir", tmp_path / "exports", "--version", 1, "--tflite", "float32",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "run" / "evaluation" / "report.json").read_text())
    assert report["class_names"] == CIFAR10_NAMES and report["num_examples"] == 50
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (config["model"], config["schedule"], config["weight_decay"], config["validation_size"]) == (
        "resnet20", "piecewise", 1e-4, 0)
    export = tmp_path / "exports" / "cifar10_resnet20" / "1"
    assert (export / "saved_model.pb").exists() and (export / "BLESSED").exists()
    evaluation = json.loads((export / "evaluation.json").read_text())
    assert evaluation["signatures"]["serve_images"]["inputs"]["images"]["shape"] == [-1, 32, 32, 3]
    assert evaluation["class_names"] == CIFAR10_NAMES
