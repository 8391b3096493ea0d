"""open_dataset: in-memory names stay in memory, folder/image_folder/tfds:/tfrecord stream, unknown names are listed."""

import pytest

from kvision.data import ImageDataset, open_dataset
from kvision.data.stream import StreamedDataset
from kvision.errors import DataError
from tests.data import writers
from tests.data.test_folder import write_classes


def test_in_memory_names_keep_the_fast_path(tmp_path):
    written = writers.write_idx_dataset(tmp_path / "fm")
    dataset = open_dataset("fashion_mnist", written.path, image_size=14)
    assert isinstance(dataset, ImageDataset) and dataset.train[0].shape == (6, 14, 14, 1)


@pytest.mark.parametrize("name", ["folder", "image_folder"])
def test_folder_names_stream_and_image_size_sets_the_pipeline_size(tmp_path, name):
    write_classes(tmp_path, 10)
    dataset = open_dataset(name, tmp_path, test=0.3, seed=1)
    assert isinstance(dataset, StreamedDataset) and dataset.name == "folder" and dataset.image_size == (6, 5)
    assert dataset.counts() == open_dataset("folder", tmp_path, test=0.3, seed=1).counts()
    assert open_dataset(name, tmp_path, test=0.3, image_size=32).image_size == (32, 32)


def test_tfds_names_go_to_the_streamed_tfds_source():
    with pytest.raises(DataError, match=r"Unknown TFDS dataset: .*Received: name='tf_flowerz'"):
        open_dataset("tfds:tf_flowerz")


def test_tfrecord_branch_reads_the_shards_directory(tmp_path):
    pytest.importorskip("kvision.data.tfrecord")
    with pytest.raises(DataError):
        open_dataset("tfrecord", tmp_path / "no-shards")


@pytest.mark.parametrize("name", ["folder", "tfrecord"])
def test_directory_sources_need_data_dir(name):
    with pytest.raises(DataError, match=rf"The {name} dataset is read from a directory: .*Received: data_dir=None"):
        open_dataset(name)


def test_unknown_name_lists_the_known_ones():
    known = r"Expected one of: cifar10, .*, folder, image_folder, tfrecord, tfds:NAME"
    with pytest.raises(DataError, match=known + r" \(close: folder, image_folder\)\. Received: name='folders'"):
        open_dataset("folders")
