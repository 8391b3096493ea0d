"""recipes/vae.py end to end on tiny IDX files, as a user runs it; and exporting its run apart."""

import json
from pathlib import Path

import pytest
import tensorflow as tf

from kvision.export.cli import main as export_main
from tests.data.writers import write_idx_dataset
from tests.helpers import quadrant_examples
from tests.recipes.helpers import run_in_process, run_recipe, summary_of


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("vae")
    data = write_idx_dataset(tmp / "data", train_count=160, test_count=50, examples=quadrant_examples).path
    return tmp, data


@pytest.fixture(scope="module")
def vae_run(setup):
    """The recipe run both end-to-end tests inspect: a narrow VAE, no TFLite file, 2 epochs (pictures of each)."""
    tmp, data = setup
    result = run_recipe("vae.py", "--data-dir", data, "--epochs", 2, "--batch-size", 32, "--validation-size", 32,
                        "--latent-dim", 3, "--filters", 8, 16, "--dense-units", 16, "--tflite", "",
                        "--run-dir", tmp / "run", "--export-dir", tmp / "exports", "--version", 2, cwd=tmp)
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp, result


@pytest.mark.slow
def test_vae_trains_reports_the_test_elbo_and_exports_its_decoder(vae_run):
    tmp, result = vae_run
    summary = summary_of(result.stdout)
    quality = json.loads((tmp / "run" / "evaluation" / "quality.json").read_text())
    assert quality["test_images"] == 50 and quality["latent_dim"] == 3
    assert summary["test_elbo"] == round(quality["elbo"], 2) < 0
    assert quality["elbo"] == pytest.approx(-(quality["reconstruction"] + quality["kl"]), rel=1e-5)
    assert summary["blessed"] is True and summary["saved_model"] == str(tmp / "exports" / "fashion_mnist_vae_3d" / "2")
    evaluation = json.loads((Path(summary["saved_model"]) / "evaluation.json").read_text())
    assert evaluation["metrics"]["elbo"] == quality["elbo"]
    assert set(evaluation["signatures"]["serving_default"]["inputs"]) == {"noise"}
    assert evaluation["signatures"]["serving_default"]["outputs"]["images"]["shape"] == [-1, 28, 28, 1]
    assert "SavedModel max abs Δpixel" in result.stdout  # the round trip in a fresh process
    traversal = tf.io.decode_png(tf.io.read_file(summary["pictures"][1]))
    assert traversal.shape == (15 * 28, 15 * 28, 1)
    assert tf.io.decode_png(tf.io.read_file(summary["pictures"][0])).shape == (8 * 28, 10 * 28, 1), "40 test images and their reconstructions"
    assert (tmp / "run" / "samples" / "traversal_epoch_002.png").exists()


@pytest.mark.slow
def test_a_vae_run_exports_apart_from_training(vae_run):
    tmp, _ = vae_run
    # In this process: the command's entry point is tested in tests/export/test_cli.py, its VAE branch here.
    result = export_main([str(tmp / "run"), "--name", "vae", "--export-dir", str(tmp / "cli"), "--version", "1",
                          "--tflite", ""])
    assert result.path == tmp / "cli" / "vae" / "1"
    evaluation = json.loads((result.path / "evaluation.json").read_text())
    quality = json.loads((tmp / "run" / "evaluation" / "quality.json").read_text())
    assert evaluation["blessed"] and evaluation["metrics"]["elbo"] == quality["elbo"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--tflite", "int8"], "error: Generators export as float32, float16 or dynamic TFLite files. Received: int8"),
        (["--filters", "8", "16", "32", "64"], "multiples of 2^len(filters) = 16"),
        (["--beta", "-1"], "beta must be a number ≥ 0"),
    ],
)
@pytest.mark.slow
def test_user_mistakes_get_one_line_and_no_output(setup, tmp_path, args, message, monkeypatch):
    _, data = setup
    result = run_in_process("vae.py", "--data-dir", data, *args, "--run-dir", tmp_path / "run", "--export-dir",
                            tmp_path / "exports", cwd=tmp_path, monkeypatch=monkeypatch)
    assert result.returncode != 0 and message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists() and not (tmp_path / "exports").exists()


def test_help_documents_every_flag(tmp_path, monkeypatch):
    shown = run_in_process("vae.py", "--help", cwd=tmp_path, monkeypatch=monkeypatch).stdout
    for flag in ("--latent-dim", "--beta", "--filters", "--epochs", "--validation-size", "--mixed-precision", "--xla",
                 "--tflite", "--version", "--push-unblessed"):
        assert flag in shown
