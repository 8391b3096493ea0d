"""recipes/classification.py on a streamed image folder: Inception crops, export, bad images before any output."""

import json

import pytest

from kvision.data import ImageDataset
from kvision.data.stream import StreamedDataset
from kvision.errors import DataError
from kvision.recipes.common import RunRules
from tests.data.streams import file_split, write_folder
from tests.helpers import quadrant_images


@pytest.fixture
def recipe():
    from kvision.recipes import classification

    return classification


def folder_dataset(root, corrupt=()):
    """A 64×64 JPEG folder of quadrant images as a ``StreamedDataset`` (train, test), and its training files.

    ``corrupt`` training files are cut short.
    """
    splits = {}
    for split, count, seed in (("train", 32, 1), ("test", 12, 2)):
        images, labels = quadrant_images(count, size=64, channels=3, seed=seed)
        paths = write_folder(root / split, images, labels)
        if split == "train":
            train_paths = paths
            for i in corrupt:
                paths[i].write_bytes(paths[i].read_bytes()[:200])
        splits[split] = file_split(paths, labels)
    dataset = StreamedDataset("folder", ["c0", "c1", "c2", "c3"], splits, 3, str(root), image_size=(64, 64),
                              fingerprint="test")
    return dataset, train_paths


def arguments(tmp_path, *extra):
    return ["--dataset", "folder", "--model", "cnn", "--epochs", "1", "--batch-size", "16", "--lr", "0.05",
            "--run-dir", str(tmp_path / "run"), "--export-dir", str(tmp_path / "exports"), "--version", "3",
            "--tflite", "", *extra]


@pytest.mark.slow
def test_streamed_folder_trains_with_inception_crops_skips_bad_images_and_exports(recipe, tmp_path, capsys):
    _, paths = folder_dataset(tmp_path / "data", corrupt=(5, 9))  # JPEGs in train/c*/, test/c*/: the real folder source
    summary = recipe.main(arguments(tmp_path, "--data-dir", str(tmp_path / "data"), "--skip-bad-images"))
    assert summary["crop"] == "inception" and summary["blessed"] is True
    export = tmp_path / "exports" / "folder_cnn" / "3"
    evaluation = json.loads((export / "evaluation.json").read_text())
    assert (export / "BLESSED").exists() and evaluation["eval_crop"] == "center"
    assert evaluation["dataset"]["evaluation_sample"] == evaluation["metrics"]["evaluation_examples"] == 12
    report = json.loads((tmp_path / "run" / "evaluation" / "report.json").read_text())
    assert report["num_examples"] == 12
    # The folder source carves validation out of train/ by a hash of each path: a bad image may be in either.
    skipped = summary["skipped_images"].values()
    named = sorted(name.split(": ")[0] for split in skipped for name in split["first"])
    assert sum(split["count"] for split in skipped) == 2 and named == sorted([str(paths[5]), str(paths[9])]), named
    assert "skipped 2 image(s) that failed to decode, first: " in capsys.readouterr().out


def test_a_corrupt_file_is_named_before_the_run_directory_is_written(recipe, tmp_path, monkeypatch):
    dataset, paths = folder_dataset(tmp_path / "data", corrupt=(5,))
    monkeypatch.setattr(recipe, "open_data", lambda args: dataset)
    with pytest.raises(DataError, match=rf"^{paths[5]}: expected a JPEG, PNG, GIF or BMP image. Received: "):
        recipe.run(recipe.build_parser("", {}).parse_args(arguments(tmp_path)), rules=RunRules())
    assert not (tmp_path / "run").exists()


def test_a_data_service_needs_a_streamed_dataset(recipe, tmp_path, monkeypatch):
    images, labels = quadrant_images(40, size=16)
    monkeypatch.setattr(recipe, "open_data", lambda args: ImageDataset("mnist", list("abcd"), (images, labels),
                                                                       (images, labels), "memory"))
    refusals = (("localhost", "Expected --data-service as grpc://HOST:PORT"),
                ("grpc://localhost:5050", "--data-service needs a streamed dataset .* Received: --dataset mnist"))
    for address, message in refusals:
        flags = [*arguments(tmp_path), "--dataset", "mnist", "--data-service", address]
        args = recipe.build_parser("", {}).parse_args(flags)
        with pytest.raises(DataError, match=message):
            recipe.run(args, rules=RunRules())
    assert not (tmp_path / "run").exists()
