"""recipes/transfer.py --backbone: a Keras Applications backbone from a local weights file, fine-tuned on a streamed folder."""

import json

import keras
import numpy as np
import pytest

from tests.data.streams import write_folder
from tests.helpers import quadrant_images
from tests.recipes.helpers import run_in_process

SIZE = 64  # Inception crops (streamed images of 64+ px) and MobileNetV2's smallest input are both in reach


@pytest.fixture
def transfer():
    from kvision.recipes import transfer

    return transfer


def jpeg_folder(root):
    """train/c*/ and test/c*/ JPEGs of quadrant images at ``SIZE`` px."""
    for split, count, seed in (("train", 32, 1), ("test", 12, 2)):
        write_folder(root / split, *quadrant_images(count, size=SIZE, channels=3, seed=seed))
    return root


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    """Weights of MobileNetV2 without its top, as a user downloads them, and the model they came from."""
    model = keras.applications.MobileNetV2(input_shape=(SIZE, SIZE, 3), include_top=False, weights=None)
    path = tmp_path_factory.mktemp("weights") / "mobilenet_v2_notop.weights.h5"
    model.save_weights(path)
    return path, model


def arguments(tmp_path, *extra):
    return ["--backbone", "MobileNetV2", "--dataset", "folder", "--data-dir", str(tmp_path / "data"),
            "--head-epochs", "1", "--epochs", "1", "--batch-size", "16", "--head-lr", "0.01", "--finetune-lr", "0.001",
            "--run-dir", str(tmp_path / "run"), "--export-dir", str(tmp_path / "exports"), "--version", "2",
            "--tflite", "", *extra]


@pytest.mark.slow
def test_fine_tunes_from_the_weights_file_on_inception_crops_and_exports(transfer, weights_file, tmp_path):
    path, pretrained = weights_file
    jpeg_folder(tmp_path / "data")
    summary = transfer.main(arguments(tmp_path, "--weights", str(path)))
    assert summary["backbone"] == "MobileNetV2" and summary["weights"] == str(path)
    assert summary["crop"] == "inception" and summary["blessed"] is True
    assert 0 <= summary["test_accuracy"] <= 1
    # Phase 1 trained the head on the frozen backbone: its convolutions are still the file's.
    head = keras.saving.load_model(tmp_path / "run" / "head" / "checkpoints" / "last.keras")
    np.testing.assert_array_equal(head.get_layer("Conv1").kernel.numpy(), pretrained.get_layer("Conv1").kernel.numpy())
    assert head.get_layer("logits").units == 4
    for phase in ("head", "finetune"):
        assert len((tmp_path / "run" / phase / "history.csv").read_text().splitlines()) == 2  # header + 1 epoch
    export = tmp_path / "exports" / "folder_mobilenetv2" / "2"
    evaluation = json.loads((export / "evaluation.json").read_text())
    assert (export / "BLESSED").exists() and evaluation["eval_crop"] == "center"
    assert json.loads((tmp_path / "run" / "evaluation" / "report.json").read_text())["num_examples"] == 12


def test_imagenet_weights_offline_get_one_line_and_no_output(tmp_path, monkeypatch):
    import keras.src.applications.mobilenet_v2 as mobilenet_v2

    def offline(name, origin, **kwargs):
        raise Exception(f"URL fetch failure on {origin}: None -- [Errno -2] Name or service not known")

    monkeypatch.setattr(mobilenet_v2.file_utils, "get_file", offline)
    jpeg_folder(tmp_path / "data")
    result = run_in_process("transfer.py", *arguments(tmp_path), cwd=tmp_path, monkeypatch=monkeypatch)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert ("error: Could not download the ImageNet weights of MobileNetV2: expected internet access, or a local "
            "weights file of MobileNetV2 without its top passed as weights (--weights PATH). Received: URL fetch "
            "failure on https://storage.googleapis.com/") in result.stderr
    assert not (tmp_path / "run").exists()


def test_the_study_refuses_a_streamed_dataset(tmp_path, monkeypatch):
    jpeg_folder(tmp_path / "data")
    result = run_in_process("transfer.py", "--dataset", "folder", "--data-dir", tmp_path / "data",
                            "--run-dir", tmp_path / "run", cwd=tmp_path, monkeypatch=monkeypatch)
    assert result.returncode == 1
    assert ("error: The few-label study holds its dataset in memory: expected one of cifar10, cifar100, "
            "fashion_mnist, mnist or image_folder. Received: --dataset folder (to fine-tune a pretrained backbone "
            "on it, pass --backbone)") in result.stderr
    assert not (tmp_path / "run").exists()
