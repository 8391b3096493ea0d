"""The recipes, end to end on tiny files in the real formats, as a user runs them.

One ``kvision train fashion_mnist`` run (``fashion_run``: the default model with test-time flip averaging,
adversarial training, robustness report, export with a TFLite file) is inspected by several tests; the reruns load
it in this process.
"""

import json
import re
import shutil

import numpy as np
import pytest
import tensorflow as tf

from kvision.errors import ExportError
from kvision.recipes import fashion_mnist
from kvision.recipes.common import RESPELLED
from kvision.recipes.inventory import runs_table
from kvision.saving import load_model
from tests.data.writers import CIFAR10_NAMES, make_tar_gz, write_cifar10_binary, write_idx_dataset
from tests.helpers import band_examples, quadrant_examples
from tests.recipes.helpers import ROOT, run_in_process, run_kvision, summary_of

# The training settings of the fixture's run; reruns repeat them (relative paths: they run in its directory).
# Batches of 16: 24 steps in all, which learn the bands on every CPU tried (batches of 32 gave 41% on one whose
# oneDNN kernels round differently).
FASHION = ["--data-dir", "data", "--epochs", 3, "--batch-size", 16, "--validation-size", 32, "--lr", 0.05,
           "--crop-padding", 2]
ADVERSARIAL = ["--adversarial-eps", 0.05, "--adversarial-steps", 1]
# TensorFlow's start-up lines, and LiteRT's INFO line when the export's TFLite file is first run
NOISE = ("absl::InitializeLog", "cudart_stub", "cuInit", "cpu_feature_guard", "oneDNN", "XNNPACK delegate")
ROBUSTNESS = ["--robustness-eps", 0, 0.1, "--robustness-examples", 24]  # evaluation only: reruns leave them out


def fashion_args(run_dir="runs/fm", exports="exports", version=5, tflite="float32"):
    """The fixture's training flags with a run directory, export directory, version and TFLite variants."""
    return [*FASHION, "--run-dir", run_dir, "--export-dir", exports, "--version", version, "--tflite", tflite]


def files(directory):
    """Every file below ``directory`` with its size and modification time: what a run that writes nothing keeps."""
    return {path: (path.stat().st_size, path.stat().st_mtime_ns) for path in directory.rglob("*")}


@pytest.fixture(scope="module")
def fashion_run(tmp_path_factory):
    """``kvision train fashion_mnist`` in a fresh process: its directory (data/, runs/fm/, exports/) and the process."""
    tmp = tmp_path_factory.mktemp("fashion")
    # Bright bands, not quadrants: the recipe flips training images and averages each test image with its mirror.
    write_idx_dataset(tmp / "data", train_count=160, test_count=32, examples=band_examples)
    result = run_kvision("train", "fashion_mnist", *fashion_args(), *ADVERSARIAL, *ROBUSTNESS, cwd=tmp, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp, result


@pytest.mark.slow
def test_fashion_mnist_recipe_trains_evaluates_and_exports(fashion_run):
    tmp, result = fashion_run
    run = tmp / "runs" / "fm"
    summary = summary_of(result.stdout)
    report = json.loads((run / "evaluation" / "report.json").read_text())
    assert summary["test_accuracy"] == report["accuracy"] >= 0.5, "bands are learnable in 3 epochs"
    assert report["class_names"][0] == "T-shirt/top" and report["num_examples"] == 32
    config = json.loads((run / "config.json").read_text())
    assert config["model"] == "cnn_fast" and config["epochs"] == 3 and config["tta"] == summary["tta"] == "flip"
    for name in ("confusion_matrix.png", "training_curves.png"):
        assert (run / "evaluation" / name).exists(), name

    export = tmp / "exports" / "fashion_mnist_cnn_fast" / "5"
    assert summary["saved_model"] == "exports/fashion_mnist_cnn_fast/5" and summary["blessed"] is True
    assert (export / "BLESSED").exists() and (export / "tflite" / "fashion_mnist_cnn_fast_float32.tflite").exists()
    assert "SavedModel serving_default max abs Δlogit" in result.stdout, "the parity table is printed"
    evaluation = json.loads((export / "evaluation.json").read_text())
    assert evaluation["metrics"]["accuracy"] == report["accuracy"]
    assert evaluation["metrics"]["top5_accuracy"] == report["top5_accuracy"]
    assert evaluation["training_command"] == config["command"], "the export records the command that trained it"
    serving = tf.saved_model.load(str(export)).signatures["serve_images"]
    best = load_model(run / "checkpoints" / "best.keras")
    assert type(best).__name__ == "Functional", "the plain classifier is saved, not its adversarial-training wrapper"
    images = np.random.default_rng(0).integers(0, 255, (4, 28, 28, 1)).astype("uint8")
    plain, mirrored = (best.predict(x.astype("float32"), verbose=0) for x in (images, images[:, :, ::-1]))
    served = serving(images=tf.constant(images))["logits"]
    np.testing.assert_allclose(served, (plain + mirrored) / 2, atol=1e-4, err_msg="the served model averages flips")
    assert np.abs(plain - mirrored).max() > 1e-3, "the check above tells the two passes apart"
    assert "test-time flip averaging" in result.stdout.splitlines()[1]


@pytest.mark.slow
def test_kvision_train_records_its_command_and_runs_lists_it(fashion_run):
    tmp, result = fashion_run
    first = result.stdout.splitlines()
    assert first[0].startswith("model: cnn_fast, ") and "parameters, input (28, 28, 1)" in first[0]
    assert first[1].startswith("data: fashion_mnist from ")
    assert first[2].startswith("devices: ") and first[3] == "run: runs/fm: a new run"
    noise = [line for line in result.stderr.splitlines() if any(noise in line for noise in NOISE)]
    assert not noise, "the command hides TensorFlow's start-up lines (kvision.console) and LiteRT's"
    summary = summary_of(result.stdout)
    tail = result.stdout[result.stdout.rindex("\n}\n"):]
    assert re.search(rf"\n\s*test_accuracy\s+{round(summary['test_accuracy'], 4)}\n", tail), "the summary table"
    assert "tensorboard --logdir runs/fm" in tail and "exports/fashion_mnist_cnn_fast/5 (BLESSED, published)" in tail
    config = json.loads((tmp / "runs" / "fm" / "config.json").read_text())
    assert config["command"].startswith("kvision train fashion_mnist --data-dir data"), config["command"]
    assert config["name"] == "fashion_mnist_cnn_fast"
    row = runs_table(tmp / "runs", base=tmp).splitlines()[2].split()
    assert row[1:5] == ["fashion_mnist", "fashion_mnist", "cnn_fast", "3"] and row[-2:] == ["BLESSED", "v5"], row
    assert row[7:9] == ["accuracy", f"{summary['test_accuracy']:.4f}"], row


@pytest.mark.slow
def test_adversarial_training_and_robustness_flags(fashion_run):
    tmp, result = fashion_run
    run = tmp / "runs" / "fm"
    summary = summary_of(result.stdout)
    robustness = json.loads((run / "evaluation" / "robustness.json").read_text())
    assert robustness["num_examples"] == 24 and robustness["epsilons"] == [0.0, 0.1]
    assert summary["robustness"] == {
        "examples": 24,
        "fgsm_accuracy": dict(zip(["0", "0.1"], robustness["fgsm_accuracy"])),
        "pgd_accuracy": dict(zip(["0", "0.1"], robustness["pgd_accuracy"])),
        "report": "runs/fm/evaluation/robustness.json",
    }
    assert summary["robustness"]["pgd_accuracy"]["0"] == robustness["clean_accuracy"], "no attack at ε = 0"
    assert (run / "evaluation" / "robustness.png").exists()
    config = json.loads((run / "config.json").read_text())
    assert (config["adversarial_eps"], config["adversarial_steps"], config["adversarial_step_size"]) == (0.05, 1, None)
    best = load_model(run / "checkpoints" / "best.keras")
    assert best.get_layer("logits").units == 10


@pytest.mark.slow
def test_a_rerun_with_other_training_settings_is_refused_and_writes_nothing(fashion_run, monkeypatch):
    tmp, _ = fashion_run
    before = files(tmp)
    result = run_in_process("fashion_mnist.py", *fashion_args(version=6), *ADVERSARIAL, "--lr", 0.2,
                            "--model", "resnet20", cwd=tmp, monkeypatch=monkeypatch)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    line = next(line for line in result.stderr.splitlines() if line.startswith("error:"))
    assert line.startswith("error: runs/fm holds a run with other settings; run it with its own, use another "
                           "--run-dir, or add --overwrite to delete it and start afresh.")
    assert line.endswith("Received (recorded → given): lr 0.05 → 0.2, model 'cnn_fast' → 'resnet20'"), "not --version"
    assert files(tmp) == before


@pytest.mark.slow
def test_overwrite_trains_afresh_and_a_run_whose_export_failed_exports_again_without_training(
        fashion_run, tmp_path, monkeypatch):
    """On a copy of the fixture's run: --overwrite retrains it (no attacks; the export fails: a full disk).

    A rerun then loads the finished training and only exports.
    """
    tmp, _ = fashion_run
    run_dir, exports = tmp_path / "run", tmp_path / "exports"
    shutil.copytree(tmp / "runs" / "fm", run_dir)
    earlier = {path.name for path in (run_dir / "logs" / "train").iterdir()}
    args = [*fashion_args(run_dir, exports, version=6, tflite=""), "--epochs", 1]

    def full_disk(*args, **kwargs):
        raise ExportError("No space left on device. Received: a full disk")

    with monkeypatch.context() as patched:
        patched.setattr("kvision.recipes.common.export_classifier", full_disk)
        failed = run_in_process("fashion_mnist.py", *args, "--overwrite", cwd=tmp, monkeypatch=patched)
    assert failed.returncode == 1 and "error: No space left on device" in failed.stderr, failed.stderr[-3000:]
    assert f"{run_dir}: --overwrite: the earlier run was deleted" in failed.stdout
    history = (run_dir / "history.csv").read_text()
    assert history.count("\n") == 2, "a header and the one epoch trained"
    assert json.loads((run_dir / "config.json").read_text())["epochs"] == 1
    events = {path.name for path in (run_dir / "logs" / "train").iterdir()}
    assert earlier and events and earlier.isdisjoint(events), "the old run's TensorBoard events are gone"

    result = run_in_process("fashion_mnist.py", *args, cwd=tmp, monkeypatch=monkeypatch)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"{run_dir}: training finished earlier (1 epochs); loading best.keras" in result.stdout
    assert (run_dir / "history.csv").read_text() == history, "no epoch was trained"
    export = exports / "fashion_mnist_cnn_fast" / "6"
    assert (export / "BLESSED").exists()
    evaluation = json.loads((export / "evaluation.json").read_text())
    assert evaluation["training_command"].startswith(str(ROOT / "recipes" / "fashion_mnist.py")), "the script's command"


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
        if script == "cifar10.py":
            assert "(default: resnet20)" in " ".join(result.stdout.split()), "the model the CIFAR-10 run below replaces"


@pytest.mark.parametrize(("argv", "expected"), [
    ([], None), (["--mixed-precision"], "float16"), (["--mixed-precision", "bfloat16"], "bfloat16"),
])
def test_mixed_precision_flag_names_the_compute_type(argv, expected):
    assert fashion_mnist.settings(argv).mixed_precision == expected


def test_a_run_recorded_when_mixed_precision_was_a_switch_resumes_with_the_same_flags():
    """config.json before 8f5e3a1 holds the switch as true/false: read as today's parse of the same flags."""
    assert RESPELLED["mixed_precision"] == {True: fashion_mnist.settings(["--mixed-precision"]).mixed_precision,
                                            False: fashion_mnist.settings([]).mixed_precision}


@pytest.mark.parametrize(("recorded", "expected"), [(True, "float16"), (False, None)])
def test_config_of_a_run_recorded_when_mixed_precision_was_a_switch_gives_todays_value(tmp_path, recorded, expected):
    """--config reads the old spelling as open_run does, so a re-run into the same run directory is not refused."""
    (tmp_path / "config.json").write_text(json.dumps({"epochs": 2, "mixed_precision": recorded}))
    settings = fashion_mnist.settings(["--config", str(tmp_path / "config.json")])
    assert settings.mixed_precision == expected and settings.epochs == 2


def test_an_unknown_mixed_precision_flag_lists_the_choices(capsys):
    with pytest.raises(SystemExit):
        fashion_mnist.settings(["--mixed-precision", "float8"])
    error = capsys.readouterr().err
    assert "--mixed-precision: invalid choice: 'float8'" in error and "float16" in error and "bfloat16" in error


@pytest.mark.slow
def test_cifar10_recipe_on_a_tiny_binary_archive(tmp_path, monkeypatch):
    """The script's other defaults (schedule, no validation) on the binary release: one step of the small CNN.

    (Its default ResNet-20 is in its help, above; ResNet training is tests/models' job.)
    """
    release = write_cifar10_binary(tmp_path / "release", per_batch=10, test_count=10, examples=quadrant_examples)
    archive = make_tar_gz(release.path, tmp_path / "cifar-10-binary.tar.gz")
    result = run_in_process(
        "cifar10.py", "--data-dir", archive, "--model", "cnn", "--epochs", 1, "--batch-size", 50,
        "--run-dir", tmp_path / "run", "--export-dir", tmp_path / "exports", "--version", 1, "--tflite", "",
        cwd=tmp_path, monkeypatch=monkeypatch,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "run" / "evaluation" / "report.json").read_text())
    assert report["class_names"] == CIFAR10_NAMES and report["num_examples"] == 10
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (config["schedule"], config["weight_decay"], config["validation_size"], config["crop_padding"]) == (
        "piecewise", 1e-4, 0, 4)
    export = tmp_path / "exports" / "cifar10_cnn" / "1"
    assert (export / "saved_model.pb").exists() and (export / "BLESSED").exists()
    evaluation = json.loads((export / "evaluation.json").read_text())
    assert evaluation["signatures"]["serve_images"]["inputs"]["images"]["shape"] == [-1, 32, 32, 3]
    assert evaluation["class_names"] == CIFAR10_NAMES
