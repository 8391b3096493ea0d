"""CIFAR-10/100 binary and python releases, extracted and as .tar.gz archives."""

import numpy as np
import pytest

from kvision.data import archives, load_dataset
from kvision.errors import DataError
from tests.data import writers


def assert_same(dataset, written):
    np.testing.assert_array_equal(dataset.train[0], written.train[0])
    np.testing.assert_array_equal(dataset.train[1], written.train[1])
    np.testing.assert_array_equal(dataset.test[0], written.test[0])
    np.testing.assert_array_equal(dataset.test[1], written.test[1])
    assert dataset.class_names == written.class_names
    assert dataset.train[0].dtype == np.uint8 and dataset.train[1].dtype == np.int64


@pytest.mark.parametrize("writer", [writers.write_cifar10_binary, writers.write_cifar10_python])
def test_cifar10_release_round_trips(tmp_path, writer):
    written = writer(tmp_path / "data")
    for data_dir in (written.path.parent, written.path):  # the parent folder or the release folder
        dataset = load_dataset("cifar10", data_dir)
        assert_same(dataset, written)
        assert dataset.name == "cifar10" and dataset.origin == str(written.path)
        assert dataset.image_shape == (32, 32, 3) and dataset.num_classes == 10
        assert len(dataset.train[0]) == 15 and len(dataset.test[0]) == 4


@pytest.mark.parametrize("writer", [writers.write_cifar100_binary, writers.write_cifar100_python])
def test_cifar100_release_uses_fine_labels(tmp_path, writer):
    written = writer(tmp_path / "data")
    dataset = load_dataset("cifar100", written.path.parent)
    assert_same(dataset, written)
    assert dataset.num_classes == 100 and dataset.class_names[7] == "fine_7"


@pytest.mark.parametrize(
    "writer, archive_name",
    [
        (writers.write_cifar10_binary, "cifar-10-binary.tar.gz"),
        (writers.write_cifar10_python, "cifar-10-python.tar.gz"),
    ],
)
def test_cifar10_archive_is_extracted_once_next_to_it(tmp_path, monkeypatch, writer, archive_name):
    written = writer(tmp_path / "src")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    archive = writers.make_tar_gz(written.path, downloads / archive_name)

    for data_dir in (downloads, archive):  # the folder holding the archive, or the archive itself
        assert_same(load_dataset("cifar10", data_dir), written)
        # Reused afterwards: extracting again would fail.
        monkeypatch.setattr(archives, "_extract_into", lambda *a: pytest.fail("extracted twice"))

    extracted = downloads / archive_name.replace(".tar.gz", ".extracted") / written.path.name
    assert sorted(p.name for p in extracted.iterdir()) == sorted(p.name for p in written.path.iterdir())
    assert sorted(p.name for p in downloads.iterdir()) == sorted([archive_name, extracted.parent.name])


def test_cifar100_python_archive(tmp_path):
    written = writers.write_cifar100_python(tmp_path / "src")
    archive = writers.make_tar_gz(written.path, tmp_path / "cifar-100-python.tar.gz")
    assert_same(load_dataset("cifar100", archive), written)


def test_archive_in_read_only_folder_is_extracted_into_keras_cache(tmp_path, isolated_locations, monkeypatch):
    keras_home, _ = isolated_locations
    written = writers.write_cifar10_binary(tmp_path / "src")
    archive = writers.make_tar_gz(written.path, tmp_path / "cifar-10-binary.tar.gz")
    real_mkdtemp = archives.tempfile.mkdtemp

    def mkdtemp(prefix, dir):
        if dir == tmp_path:
            raise PermissionError(13, "Permission denied", str(dir))
        return real_mkdtemp(prefix=prefix, dir=dir)

    monkeypatch.setattr(archives.tempfile, "mkdtemp", mkdtemp)
    dataset = load_dataset("cifar10", archive)
    assert_same(dataset, written)
    assert dataset.origin.startswith(str(keras_home / "datasets" / "kvision-extract"))


def test_truncated_binary_batch_names_file_and_sizes(tmp_path):
    written = writers.write_cifar10_binary(tmp_path)
    batch = written.path / "data_batch_3.bin"
    batch.write_bytes(batch.read_bytes()[:5000])
    with pytest.raises(DataError) as info:
        load_dataset("cifar10", tmp_path)
    message = str(info.value)
    assert str(batch) in message
    assert "3073-byte records" in message and "30730000 bytes" in message
    assert message.endswith("Received: 5000 bytes, a truncated or wrong file")


def test_binary_label_out_of_range(tmp_path):
    written = writers.write_cifar10_binary(tmp_path)
    batch = written.path / "test_batch.bin"
    data = bytearray(batch.read_bytes())
    data[3073] = 12  # label byte of the second record
    batch.write_bytes(bytes(data))
    with pytest.raises(
        DataError, match=r"test_batch\.bin: expected labels in \[0, 9\].*Received: labels in \[\d+, 12\]"
    ):
        load_dataset("cifar10", tmp_path)


def test_missing_batch_is_named(tmp_path):
    written = writers.write_cifar10_binary(tmp_path)
    (written.path / "data_batch_5.bin").unlink()
    with pytest.raises(DataError, match=r"Received: a directory without data_batch_5\.bin$"):
        load_dataset("cifar10", tmp_path)


def test_wrong_class_name_count(tmp_path):
    written = writers.write_cifar10_binary(tmp_path)
    (written.path / "batches.meta.txt").write_text("cat\ndog\n")
    with pytest.raises(DataError, match=r"batches\.meta\.txt: expected 10 class names.*Received: 2 names"):
        load_dataset("cifar10", tmp_path)


def test_cifar100_folder_is_not_cifar10(tmp_path):
    writers.write_cifar100_binary(tmp_path)
    with pytest.raises(DataError, match="Could not find the cifar10 dataset"):
        load_dataset("cifar10", tmp_path)


def test_python_batch_with_wrong_data_shape(tmp_path):
    written = writers.write_cifar10_python(tmp_path)
    writers.write_py2_pickle(
        written.path / "test_batch", {b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}
    )
    with pytest.raises(
        DataError, match=r"test_batch: expected 'data' to be a uint8 array of shape \(N, 3072\)"
    ):
        load_dataset("cifar10", tmp_path)


def test_batch_cut_at_a_record_boundary_is_caught(tmp_path):
    written = writers.write_cifar10_binary(tmp_path, per_batch=3)
    batch = written.path / "data_batch_4.bin"
    batch.write_bytes(batch.read_bytes()[: 2 * 3073])
    with pytest.raises(DataError) as info:
        load_dataset("cifar10", tmp_path)
    assert str(info.value) == (
        f"{batch}: expected 9219 bytes (3 records of 3073, like the other training batches). "
        "Received: 6146 bytes"
    )
