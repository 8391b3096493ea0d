"""MNIST-style IDX files (raw and gzipped), Keras' mnist.npz, and the real Fashion-MNIST."""

import gzip
from pathlib import Path

import numpy as np
import pytest

from kvision.data import load_dataset
from kvision.errors import DataError
from tests.data import writers

REAL_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.parametrize("gz", [True, False])
def test_idx_files_round_trip(tmp_path, gz):
    written = writers.write_idx_dataset(tmp_path, gz=gz)
    dataset = load_dataset("fashion_mnist", tmp_path)
    np.testing.assert_array_equal(dataset.train[0], written.train[0])
    np.testing.assert_array_equal(dataset.train[1], written.train[1])
    np.testing.assert_array_equal(dataset.test[0], written.test[0])
    np.testing.assert_array_equal(dataset.test[1], written.test[1])
    assert dataset.image_shape == (28, 28, 1) and dataset.train[1].dtype == np.int64
    assert dataset.class_names[0] == "T-shirt/top" and dataset.class_names[9] == "Ankle boot"
    assert load_dataset("mnist", tmp_path).class_names == [str(d) for d in range(10)]


def test_system_folder_is_found_without_data_dir(tmp_path, isolated_locations):
    _, system = isolated_locations
    written = writers.write_idx_dataset(system / "fashion-mnist")
    dataset = load_dataset("fashion_mnist", download=False)
    assert dataset.origin == str(system / "fashion-mnist")
    np.testing.assert_array_equal(dataset.test[0], written.test[0])


def test_keras_cache_is_used_for_fashion_mnist(tmp_path, isolated_locations):
    keras_home, _ = isolated_locations
    writers.write_idx_dataset(keras_home / "datasets" / "fashion-mnist")
    assert load_dataset("fashion_mnist", download=False).origin == str(
        keras_home / "datasets" / "fashion-mnist"
    )


def test_truncated_gz_names_the_file(tmp_path):
    writers.write_idx_dataset(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(
        DataError, match=r"train-images-idx3-ubyte\.gz: expected a complete gzip file\. Received: a truncated"
    ):
        load_dataset("fashion_mnist", tmp_path)


def test_truncated_raw_idx_reports_expected_size(tmp_path):
    writers.write_idx_dataset(tmp_path, gz=False, train_count=6)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:1000])
    message = r"train-images-idx3-ubyte: expected 4720 bytes \(header of 16 \+ 4704 values for shape \(6, 28, 28\)\)\. Received: 1000 bytes"
    with pytest.raises(DataError, match=message):
        load_dataset("mnist", tmp_path)


def test_wrong_magic_is_reported(tmp_path):
    writers.write_idx_dataset(tmp_path, gz=False)
    path = tmp_path / "t10k-labels-idx1-ubyte"
    path.write_bytes(b"\x00\x00\x0d\x01" + path.read_bytes()[4:])
    with pytest.raises(
        DataError,
        match=r"expected an IDX file of unsigned bytes with 1 dimension\(s\) \(magic 00 00 08 01\)\. Received: 00 00 0d 01",
    ):
        load_dataset("mnist", tmp_path)


def test_label_count_mismatch(tmp_path):
    writers.write_idx_dataset(tmp_path, gz=True, test_count=4)
    labels = np.array([1, 2, 3], np.uint8)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(writers.idx_bytes(labels)))
    with pytest.raises(
        DataError,
        match=r"expected one label per image of t10k-images-idx3-ubyte.gz \(4\)\. Received: 3 labels",
    ):
        load_dataset("mnist", tmp_path)


def test_label_out_of_range(tmp_path):
    writers.write_idx_dataset(tmp_path, gz=False)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(
        writers.idx_bytes(np.array([0, 1, 2, 3, 4, 10], np.uint8))
    )
    with pytest.raises(
        DataError,
        match=r"train-labels-idx1-ubyte: expected labels in \[0, 9\].*Received: labels in \[0, 10\]",
    ):
        load_dataset("mnist", tmp_path)


def test_mnist_npz_from_keras_cache_and_as_file(tmp_path, isolated_locations):
    keras_home, _ = isolated_locations
    x_train, x_test = (
        writers.random_images(5, 28, 28, 1)[..., 0],
        writers.random_images(2, 28, 28, 1, seed=3)[..., 0],
    )
    y_train, y_test = np.array([0, 1, 2, 3, 9], np.uint8), np.array([5, 6], np.uint8)
    npz = keras_home / "datasets" / "mnist.npz"
    npz.parent.mkdir(parents=True)
    np.savez(npz, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    for dataset in (load_dataset("mnist", download=False), load_dataset("mnist", npz)):
        assert dataset.origin == str(npz) and dataset.image_shape == (28, 28, 1)
        np.testing.assert_array_equal(dataset.train[0][..., 0], x_train)
        np.testing.assert_array_equal(dataset.test[1], y_test)
        assert dataset.test[1].dtype == np.int64


def test_npz_missing_array(tmp_path):
    np.savez(tmp_path / "mnist.npz", x_train=np.zeros((1, 2, 2), np.uint8))
    with pytest.raises(
        DataError,
        match=r"mnist\.npz: expected the arrays x_train, y_train, x_test, y_test\. Received: no y_train, x_test, y_test",
    ):
        load_dataset("mnist", tmp_path)


@pytest.mark.skipif(not REAL_FASHION_MNIST.is_dir(), reason="apt-get install dataset-fashion-mnist")
def test_real_fashion_mnist():
    dataset = load_dataset("fashion_mnist", REAL_FASHION_MNIST, download=False)
    assert dataset.train[0].shape == (60000, 28, 28, 1) and dataset.test[0].shape == (10000, 28, 28, 1)
    assert dataset.train[0].dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(dataset.train[1]), np.full(10, 6000))
    np.testing.assert_array_equal(np.bincount(dataset.test[1]), np.full(10, 1000))
    assert dataset.train[0].max() == 255 and dataset.num_classes == 10
