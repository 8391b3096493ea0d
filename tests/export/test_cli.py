"""``python -m kvision.export``: exporting a saved model apart from training."""

import errno
import json
import os
import runpy
import sys

import pytest

from kvision.export import saved_model, versions
from kvision.export.cli import main
from kvision.models import build
from tests.data.writers import write_idx_dataset
from tests.export.helpers import crash_serving_check
from tests.helpers import quadrant_examples, small_cnn


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run directory as the recipes leave it: checkpoints and config.json naming the data."""
    tmp = tmp_path_factory.mktemp("cli")
    data = write_idx_dataset(tmp / "data", train_count=64, test_count=32, examples=quadrant_examples).path
    run = tmp / "run"
    (run / "checkpoints").mkdir(parents=True)
    small_cnn((28, 28, 1), 10).save(run / "checkpoints" / "best.keras")
    command = "python recipes/fashion_mnist.py --epochs 1"
    (run / "config.json").write_text(json.dumps({"dataset": "fashion_mnist", "data_dir": str(data), "command": command}))
    return run


def test_exports_a_run_directory_with_the_data_of_its_config_and_a_models_config_failure_only_warns(
        run_dir, tmp_path, monkeypatch, capsys):
    def disk_full(source, target):
        raise OSError(errno.ENOSPC, "No space left on device", str(target))

    monkeypatch.setattr(saved_model.os, "replace", disk_full)  # how models.config is put in place, after publishing
    result = main([str(run_dir), "--name", "fm", "--export-dir", str(tmp_path), "--version", "4", "--tflite", "float32"])
    assert result.blessed and result.path == tmp_path / "fm" / "4"
    evaluation = json.loads((result.path / "evaluation.json").read_text())
    assert evaluation["training_command"] == "python recipes/fashion_mnist.py --epochs 1"
    assert evaluation["dataset"]["name"] == "fashion_mnist" and evaluation["dataset"]["fingerprint"].startswith("sha256:")
    assert evaluation["metrics"]["evaluation_examples"] == 32 and evaluation["class_names"][0] == "T-shirt/top"
    assert list(evaluation["parity"]["tflite"]) == ["float32"]
    assert result.pushed and versions(tmp_path / "fm") == [4] and sorted(os.listdir(tmp_path / "fm")) == ["4"], \
        "published, without models.config"
    assert f"warning: {tmp_path / 'fm' / '4'} is published, but" in capsys.readouterr().err, "exit 0 with a warning"


def test_an_unblessed_export_exits_with_the_failed_checks(run_dir, tmp_path, monkeypatch):
    crash_serving_check(monkeypatch, tmp_path)  # the accuracy bar is tested: no TensorFlow process is started
    with pytest.raises(SystemExit, match=r"error: Version 1 is NOT_BLESSED and was not pushed; kept at .*rejected.*"
                                         r"Failed: accuracy on the evaluation split = \S+ \(bar >= 1\)"):
        main([str(run_dir / "checkpoints" / "best.keras"), "--name", "fm", "--export-dir", str(tmp_path),
              "--version", "1", "--tflite", "", "--bless-min-accuracy", "1.0"])
    assert versions(tmp_path / "fm") == []


@pytest.mark.parametrize(
    "path, extra, message",
    [
        ("missing.keras", [], r"error: Expected a .keras file or a run directory. Received: .*missing.keras"),
        (".", [], r"error: Expected a run directory holding .*best.keras, .*last.keras or .*generator_ema.keras"),
        ("run/checkpoints/best.keras", ["--tflite", "int4"], "error: Expected TFLite variants among float32, float16"),
    ],
)
def test_user_mistakes_get_one_line(run_dir, tmp_path, path, extra, message):
    with pytest.raises(SystemExit, match=message):
        main([str(run_dir.parent / path), *extra, "--name", "fm", "--export-dir", str(tmp_path)])
    assert not (tmp_path / "fm").exists()


def test_help_documents_every_flag(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["python -m kvision.export", "--help"])
    with pytest.raises(SystemExit) as exited:
        runpy.run_module("kvision.export", run_name="__main__")  # what python -m kvision.export runs
    assert exited.value.code == 0
    shown = capsys.readouterr().out
    for flag in ("MODEL_PATH", "--name", "--tflite", "--int8-io", "--bless-min-accuracy", "--push-unblessed",
                 "--keep-versions", "--version", "--allow-select-ops", "--dataset", "--verbose", "--max-image-pixels",
                 "--max-image-bytes", "--max-batch-size"):
        assert flag in shown


def test_an_image_budget_flag_must_be_a_positive_integer(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["run", "--name", "fm", "--export-dir", str(tmp_path), "--max-image-pixels", "0"])
    assert "argument --max-image-pixels: expected a positive integer. Received: 0" in capsys.readouterr().err
    assert not (tmp_path / "fm").exists()


def test_exports_a_gan_run_with_its_quality_figures(tmp_path):
    run = tmp_path / "gan_run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "evaluation").mkdir()
    build("dcgan_generator", (16, 16, 1), 4, latent_dim=8, filters=32).save(run / "checkpoints" / "generator_ema.keras")
    (run / "evaluation" / "quality.json").write_text(json.dumps({"frechet_distance": 5.5, "class_accuracy": 0.9}))
    (run / "config.json").write_text(json.dumps({"dataset": "fashion_mnist", "command": "python recipes/dcgan.py"}))
    result = main([str(run), "--name", "gan", "--export-dir", str(tmp_path / "exports"), "--version", "2"])
    assert result.blessed and result.path == tmp_path / "exports" / "gan" / "2"
    evaluation = json.loads((result.path / "evaluation.json").read_text())
    assert evaluation["metrics"] == {"frechet_distance": 5.5, "class_accuracy": 0.9}
    assert list(evaluation["parity"]["tflite"]) == ["float32"], "a generator's default TFLite file"
    assert set(evaluation["signatures"]["serving_default"]["inputs"]) == {"noise", "label"}


@pytest.mark.parametrize(
    "make",
    [lambda: build("attention_rnn", 8, 8, units=4, embedding_dim=2),
     lambda: build("show_attend_tell", (16, 16, 1), 8, units=4, backbone_options=dict(filters=(4,), dense_units=2))],
    ids=["seq2seq", "captioner"],
)
def test_a_seq2seq_model_or_captioner_is_sent_back_to_its_recipe(tmp_path, make):
    make().save(tmp_path / "model.keras")
    with pytest.raises(SystemExit, match="error: A seq2seq model or captioner is exported by its recipe.*same --run-dir"):
        main([str(tmp_path / "model.keras"), "--name", "g2p", "--export-dir", str(tmp_path)])
    assert not (tmp_path / "g2p").exists()


def test_an_os_error_is_one_line_naming_the_path_and_verbose_adds_the_traceback(run_dir, tmp_path, capsys):
    not_a_dir = tmp_path / "saved_models"
    not_a_dir.write_text("a file where the export directory should be")
    argv = [str(run_dir), "--name", "fm", "--export-dir", str(not_a_dir), "--version", "1", "--tflite", ""]
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == f"error: NotADirectoryError: [Errno 20] Not a directory: '{not_a_dir / 'fm'}'"
    assert "Traceback" not in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--verbose"])
    assert exited.value.code.startswith("error: NotADirectoryError")
    shown = capsys.readouterr().err
    assert shown.startswith("Traceback (most recent call last):") and "mkdir" in shown
