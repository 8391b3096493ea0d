"""recipes/dcgan.py end to end on tiny IDX files, as a user runs it."""

import json
from pathlib import Path

import keras
import pytest
import tensorflow as tf

from kvision.errors import ExportError, ModelError
from tests.data.writers import make_tar_gz, write_cifar10_binary, write_idx_dataset
from tests.helpers import quadrant_examples, small_cnn
from tests.recipes.helpers import run_in_process, run_recipe, summary_of


# Narrow networks and no TFLite file: the runs prove the recipe's flow, not the model.
SMALL = ("--generator-filters", 32, "--discriminator-filters", 16, "--tflite", "")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dcgan")
    data = write_idx_dataset(tmp / "data", train_count=128, test_count=64, examples=quadrant_examples).path
    small_cnn((28, 28, 1), 10).save(tmp / "classifier.keras")
    return tmp, data


@pytest.mark.slow
def test_conditional_dcgan_trains_measures_and_exports(setup):
    tmp, data = setup
    result = run_recipe("dcgan.py", "--data-dir", data, "--conditional", "--epochs", 1, "--batch-size", 32, *SMALL,
                        "--fid-samples", 100, "--classifier", tmp / "classifier.keras", "--run-dir", tmp / "run",
                        "--export-dir", tmp / "exports", "--version", 3, "--cas", "--cas-samples", 240, "--cas-epochs", 1,
                        cwd=tmp)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = summary_of(result.stdout)
    quality = json.loads((tmp / "run" / "evaluation" / "quality.json").read_text())
    assert summary["frechet_distance"] == quality["frechet_distance"] > 0 and quality["frechet_distance_std"] > 0
    assert 0 <= summary["class_accuracy"] <= 1 and quality["num_samples"] == 100
    assert summary["cas"] == quality["cas"] and 0 <= quality["cas"] <= 1
    assert quality["cas_reference"] == "given" and quality["cas_samples"] == 240 and quality["cas_epochs"] == 1
    assert summary["blessed"] is True and summary["saved_model"] == str(tmp / "exports" / "fashion_mnist_dcgan_conditional" / "3")
    evaluation = json.loads((Path(summary["saved_model"]) / "evaluation.json").read_text())
    for key in ("frechet_distance", "class_accuracy", "num_samples", "seed", "cas", "cas_real_accuracy", "cas_samples"):
        assert evaluation["metrics"][key] == quality[key], key
    assert set(evaluation["signatures"]["serving_default"]["inputs"]) == {"noise", "label"}
    final = tf.io.decode_png(tf.io.read_file(str(tmp / "run" / "samples" / "final.png")))
    assert final.shape == (280, 280, 1)
    assert (tmp / "run" / "samples" / "epoch_001.png").exists()
    assert "SavedModel max abs Δpixel" in result.stdout


def full_disk(*args, **kwargs):
    """Stands in for ``export_generator`` on a full disk."""
    raise ExportError("No space left on device. Received: a full disk")


@pytest.mark.slow
def test_unconditional_dcgan_on_a_tiny_cifar10_archive_exports_again_after_a_failed_export(tmp_path, monkeypatch):
    """One training on a CIFAR-10 archive whose export fails; the finished run then exports without training.

    Run in this process, so the export can be made to fail; the conditional test runs the command as a user does.
    """
    release = write_cifar10_binary(tmp_path / "release", per_batch=20, test_count=20, examples=quadrant_examples)
    archive = make_tar_gz(release.path, tmp_path / "cifar-10-binary.tar.gz")
    args = ["--dataset", "cifar10", "--data-dir", archive, "--epochs", 1, "--batch-size", 25, *SMALL,
            "--run-dir", tmp_path / "run", "--export-dir", tmp_path / "exports", "--version", 1]
    with monkeypatch.context() as patched:
        patched.setattr("kvision.recipes.common.export_generator", full_disk)
        failed = run_in_process("dcgan.py", *args, cwd=tmp_path, monkeypatch=patched)
    assert failed.returncode == 1 and "error: No space left on device" in failed.stderr
    assert "note: no classifier at runs/cifar10_cnn/checkpoints/best.keras" in failed.stdout
    final = tf.io.decode_png(tf.io.read_file(str(tmp_path / "run" / "samples" / "final.png")))
    assert final.shape == (320, 320, 3)
    history = (tmp_path / "run" / "history.csv").read_text()

    result = run_in_process("dcgan.py", *args, "--fid-samples", 50, cwd=tmp_path, monkeypatch=monkeypatch)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"{tmp_path / 'run'}: training finished earlier (1 epochs); loading generator_ema.keras" in result.stdout
    assert (tmp_path / "run" / "history.csv").read_text() == history, "no epoch was trained"
    assert (tmp_path / "exports" / "cifar10_dcgan" / "1" / "BLESSED").exists()
    evaluation = json.loads((tmp_path / "exports" / "cifar10_dcgan" / "1" / "evaluation.json").read_text())
    assert evaluation["blessed"] and set(evaluation["signatures"]["serving_default"]["inputs"]) == {"noise"}
    assert evaluation["signatures"]["serving_default"]["outputs"]["images"]["shape"] == [-1, 32, 32, 3]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--tflite", "int8"], "error: Generators export as float32, float16 or dynamic TFLite files. Received: int8"),
        (["--classifier", "missing.keras"], "error: Expected a .keras classifier file. Received: missing.keras"),
        (["--dataset", "mnist", "--data-dir", "/nonexistent"], "error: Could not find the mnist dataset"),
        (["--cas"], "error: --cas measures a conditional generator. Received: --cas without --conditional"),
    ],
)
@pytest.mark.slow
def test_user_mistakes_get_one_line_and_no_output(setup, tmp_path, args, message, monkeypatch):
    _, data = setup
    args = args if "--data-dir" in args else ["--data-dir", data, *args]
    result = run_in_process("dcgan.py", *args, "--run-dir", tmp_path / "run", "--export-dir", tmp_path / "exports",
                            cwd=tmp_path, monkeypatch=monkeypatch)
    assert result.returncode != 0 and message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists() and not (tmp_path / "exports").exists()


def test_help_documents_every_flag(tmp_path, monkeypatch):
    shown = run_in_process("dcgan.py", "--help", cwd=tmp_path, monkeypatch=monkeypatch).stdout
    for flag in ("--mixed-precision", "--xla", "--conditional", "--dataset", "--loss", "--d-steps", "--ema-decay", "--spectral-norm", "--classifier",
                 "--fid-samples", "--tflite", "--version", "--push-unblessed", "--discriminator", "--d-lr", "--g-lr",
                 "--beta1", "--beta2", "--fake-labels", "--balance-classes", "--cas", "--cas-samples", "--cas-epochs"):
        assert flag in shown
    assert "--discriminator projection --loss hinge --spectral-norm" in shown, "the candidates' commands"


@pytest.mark.slow
def test_candidate_flags_reach_the_networks_and_the_training(setup, tmp_path, monkeypatch):
    _, data = setup
    seen = {}

    def fit_gan(generator_fn, discriminator_fn, train, **options):  # stands in for training: records, then stops
        seen.update(options, discriminator=discriminator_fn())
        raise ModelError("stopped before training. Received: the options")

    monkeypatch.setattr("kvision.recipes.dcgan.fit_gan", fit_gan)  # the name the recipe module calls
    result = run_in_process("dcgan.py", "--data-dir", data, "--conditional", "--discriminator", "projection", "--loss", "hinge",
                            "--spectral-norm", "--dropout", 0, "--beta1", 0, "--beta2", 0.9, "--fake-labels", "balanced",
                            "--balance-classes", "--d-lr", 4e-4, "--g-lr", 1e-4, "--run-dir", tmp_path / "run",
                            "--export-dir", tmp_path / "exports", cwd=tmp_path, monkeypatch=monkeypatch)
    assert "error: stopped before training" in result.stderr
    discriminator = seen.pop("discriminator")
    assert [i.name for i in discriminator.inputs] == ["image", "label"]
    assert isinstance(discriminator.get_layer("label_projection_sn"), keras.layers.SpectralNormalization)
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in discriminator.layers)
    assert {k: seen[k] for k in ("loss", "d_learning_rate", "g_learning_rate", "beta_1", "beta_2", "fake_labels",
                                 "balance_classes")} == {"loss": "hinge", "d_learning_rate": 4e-4, "g_learning_rate": 1e-4,
                                                         "beta_1": 0.0, "beta_2": 0.9, "fake_labels": "balanced",
                                                         "balance_classes": True}
