"""load_dataset: name checks, where it looks, the TFDS fallback and its error messages."""

import types

import numpy as np
import pytest

from kvision.data import load_dataset
from kvision.errors import DataError
from tests.data import writers


def test_unknown_name_lists_known_names():
    with pytest.raises(
        DataError,
        match=r"Expected one of: cifar10, cifar100, fashion_mnist, mnist, image_folder\. Received: name='cifar'",
    ):
        load_dataset("cifar")


@pytest.mark.parametrize("image_size", [0, (3,), "32", (2.5, 3), True])
def test_bad_image_size(image_size):
    with pytest.raises(DataError, match="Expected image_size to be a positive int"):
        load_dataset("mnist", image_size=image_size)


def test_wrong_data_dir_lists_every_path_tried(tmp_path, failing_tfds):
    (tmp_path / "unrelated.txt").write_text("x")
    with pytest.raises(DataError) as info:
        load_dataset("cifar10", tmp_path)
    message = str(info.value)
    for path in (
        f"{tmp_path}: no data_batch_1.bin (CIFAR-10 binary release); no data_batch_1 (CIFAR-10 python release)",
        f"{tmp_path / 'cifar-10-batches-bin'}: not found",
        f"{tmp_path / 'cifar-10-batches-py'}: not found",
        f"{tmp_path / 'cifar-10-binary.tar.gz'}: not found",
        f"{tmp_path / 'cifar-10-python.tar.gz'}: not found",
    ):
        assert f"  - {path}\n" in message
    assert "TFDS name 'cifar10'" in message and "cifar-10-batches-bin/ (data_batch_1.bin" in message
    assert message.endswith(f"Received: name='cifar10', data_dir='{tmp_path}', download=True")
    assert failing_tfds == []  # an explicit data_dir never falls back to a download


def test_missing_data_dir_is_reported(tmp_path):
    with pytest.raises(DataError, match=rf"  - {tmp_path / 'nope'}: not found\n"):
        load_dataset("mnist", tmp_path / "nope")


def test_nothing_anywhere_lists_paths_tfds_and_apt(isolated_locations, failing_tfds):
    keras_home, system = isolated_locations
    with pytest.raises(DataError) as info:
        load_dataset("fashion_mnist")
    error = info.value
    message = str(error)
    assert f"  - {system / 'fashion-mnist'}: not found\n" in message
    assert f"  - {keras_home / 'datasets' / 'fashion-mnist'}: not found\n" in message
    assert (
        "  - TFDS 'fashion_mnist': failed: ConnectionError: Failed to download fashion_mnist: no network\n"
        in message
    )
    assert "long traceback text" not in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "train-images-idx3-ubyte[.gz]" in message
    assert error.__cause__ is None and error.__context__ is None  # no chained traceback
    assert [name for name, _ in failing_tfds] == ["fashion_mnist"]
    kwargs = failing_tfds[0][1]
    assert kwargs["split"] == ["train", "test"] and kwargs["as_supervised"] and kwargs["batch_size"] == -1


def test_download_false_does_not_call_tfds(isolated_locations, failing_tfds):
    with pytest.raises(DataError, match=r"TFDS 'cifar100': not tried \(download=False\)"):
        load_dataset("cifar100", download=False)
    assert failing_tfds == []


def test_tfds_result_becomes_an_image_dataset(monkeypatch):
    import tensorflow_datasets as tfds

    images = writers.random_images(4, 32, 32, 3)
    labels = np.array([0, 1, 2, 9])
    info = types.SimpleNamespace(features={"label": types.SimpleNamespace(names=writers.CIFAR10_NAMES)})

    def fake_load(name, split, as_supervised, batch_size, with_info):
        assert (name, split, as_supervised, batch_size, with_info) == (
            "cifar10",
            ["train", "test"],
            True,
            -1,
            True,
        )
        return [(images, labels), (images[:2], labels[:2])], info

    monkeypatch.setattr(tfds, "load", fake_load)
    monkeypatch.setattr(tfds, "as_numpy", lambda split: split)
    dataset = load_dataset("cifar10")
    assert dataset.origin == "tfds:cifar10" and dataset.class_names == writers.CIFAR10_NAMES
    np.testing.assert_array_equal(dataset.train[0], images)
    assert dataset.train[1].dtype == np.int64 and len(dataset.test[0]) == 2


def test_keras_cache_is_used_for_cifar10_before_tfds(isolated_locations, failing_tfds):
    keras_home, _ = isolated_locations
    written = writers.write_cifar10_python(keras_home / "datasets" / "cifar-10-batches-py-target")
    dataset = load_dataset("cifar10")
    assert dataset.origin == str(written.path)
    np.testing.assert_array_equal(dataset.test[0], written.test[0])
    assert failing_tfds == []


def test_image_size_resizes_any_dataset(tmp_path):
    written = writers.write_idx_dataset(tmp_path)
    dataset = load_dataset("mnist", tmp_path, image_size=(14, 7))
    assert dataset.image_shape == (14, 7, 1) and len(dataset.train[0]) == len(written.train[0])
    np.testing.assert_array_equal(dataset.train[1], written.train[1])


def test_image_dataset_validates_its_splits():
    from kvision.data import ImageDataset

    images = np.zeros((3, 2, 2, 1), np.uint8)
    with pytest.raises(
        DataError,
        match=r"here \(train split\): expected one label per image\. Received: 3 images and 2 labels",
    ):
        ImageDataset(
            "x", ["a"], (images, np.zeros(2, np.int64)), (images, np.zeros(3, np.int64)), origin="here"
        )
    with pytest.raises(DataError, match=r"here \(test split\): expected labels in \[0, 0\]"):
        ImageDataset(
            "x", ["a"], (images, np.zeros(3, np.int64)), (images, np.ones(3, np.int64)), origin="here"
        )
    with pytest.raises(DataError, match=r"expected uint8 images of shape \(N, H, W, C\)\. Received: float32"):
        ImageDataset(
            "x", ["a"], (images.astype(np.float32), np.zeros(3)), (images, np.zeros(3)), origin="here"
        )
