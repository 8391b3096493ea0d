"""Any TFDS dataset streamed: a tiny real builder prepared offline, and real builder names under mock_data."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from kvision.data.stream import stream_pipeline
from kvision.data.tfds_stream import open_tfds
from kvision.errors import DataError

IMAGES = np.random.default_rng(0).integers(0, 256, (60, 8, 8, 3), dtype=np.uint8)


class KvisionTinyImages(tfds.core.GeneratorBasedBuilder):
    """50 train and 10 test 8×8 RGB images in 3 classes, written by TFDS itself (no download)."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        features = {"image": tfds.features.Image(shape=(8, 8, 3)), "label": tfds.features.ClassLabel(names=["a", "b", "c"])}
        return self.dataset_info_from_configs(features=tfds.features.FeaturesDict(features), supervised_keys=("image", "label"))

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(range(50)), "test": self._generate_examples(range(50, 60))}

    def _generate_examples(self, indices):
        for i in indices:
            yield i, {"image": IMAGES[i], "label": i % 3}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("tfds")
    tfds.builder("kvision_tiny_images", data_dir=str(data_dir)).download_and_prepare()
    return data_dir


def examples(split, **options):
    return list(split.read(**options).as_numpy_iterator())


def test_splits_counts_and_validation_carved_from_train(tiny_dir):
    dataset = open_tfds("kvision_tiny_images", tiny_dir, download=False, validation=0.2)
    assert dataset.name == "tfds:kvision_tiny_images" and dataset.class_names == ["a", "b", "c"]
    assert dataset.counts() == {"train": 40, "validation": 10, "test": 10}
    assert dataset.channels == 3 and dataset.image_size == (8, 8) and len(dataset.fingerprint) == 64
    ids = {split: [e[2] for e in examples(stream)] for split, stream in dataset.splits.items()}
    assert all(len(ids[split]) == count for split, count in dataset.counts().items())
    assert len(set().union(*ids.values())) == 60  # disjoint, every example once
    assert open_tfds("kvision_tiny_images", tiny_dir, download=False, validation=0).counts() == {"train": 50, "test": 10}


def test_images_arrive_encoded_and_decode_to_the_written_pixels(tiny_dir):
    split = open_tfds("kvision_tiny_images", tiny_dir, download=False).splits["test"]
    encoded, label, _ = examples(split)[0]
    assert encoded[:8] == b"\x89PNG\r\n\x1a\n"
    images, labels = next(iter(stream_pipeline(split, image_shape=(8, 8, 3), batch_size=10, training=False)))
    expected = {IMAGES[i].tobytes(): i % 3 for i in range(50, 60)}
    assert sorted(expected[image.astype(np.uint8).tobytes()] for image in images.numpy()) == sorted(labels.numpy())


def test_two_input_pipelines_read_disjoint_parts_that_cover_the_split(tiny_dir):
    split = open_tfds("kvision_tiny_images", tiny_dir, download=False).splits["train"]
    parts = [[e[2] for e in examples(split, input_context=tf.distribute.InputContext(2, i))] for i in range(2)]
    assert not set(parts[0]) & set(parts[1]) and all(parts)
    assert sorted(parts[0] + parts[1]) == sorted(e[2] for e in examples(split)) and len(parts[0] + parts[1]) == split.count


def test_real_names_under_mock_data_give_features_classes_and_channels():
    with tfds.testing.mock_data(num_examples=20):
        flowers = open_tfds("tf_flowers")
        digits = open_tfds("mnist")
        encoded = examples(flowers.splits["train"])[0][0]
    assert flowers.class_names == ["dandelion", "daisy", "tulips", "sunflowers", "roses"]
    assert flowers.channels == 3 and flowers.image_size is None and encoded[:8] == b"\x89PNG\r\n\x1a\n"
    # tf_flowers has only train: test and validation are carved from it; mnist has its own test.
    assert set(flowers.splits) == {"train", "validation", "test"} and flowers.counts() == {"train": 17, "validation": 1, "test": 2}
    assert digits.channels == 1 and digits.image_size == (28, 28) and digits.num_classes == 10


def test_unknown_name_gets_close_matches():
    with pytest.raises(DataError, match=r"Unknown TFDS dataset: .*e\.g\. tf_flowers.*Received: name='tf_flowerz'"):
        open_tfds("tf_flowerz")


def test_offline_failure_says_what_was_tried_and_how_to_get_it(tmp_path, monkeypatch):
    def offline(self, **kwargs):
        raise ConnectionError("Failed to resolve 'download.tensorflow.org'\nlong traceback")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", offline)
    with pytest.raises(DataError) as caught:
        open_tfds("tf_flowers", tmp_path)
    message = str(caught.value)
    assert "Could not find the tfds:tf_flowers dataset. Tried:" in message
    assert "failed: ConnectionError: Failed to resolve 'download.tensorflow.org'" in message and "traceback" not in message
    assert "tfds build tf_flowers --data_dir DIR" in message
    assert message.splitlines()[-1] == f"Received: name='tf_flowers', data_dir='{tmp_path}', download=True"
    with pytest.raises(DataError, match="not prepared there, and download=False"):
        open_tfds("tf_flowers", tmp_path, download=False)


def test_dataset_without_image_label_pair_is_refused():
    with tfds.testing.mock_data(num_examples=2), pytest.raises(
        DataError, match=r"tfds:imdb_reviews: expected an image/label pair .* Received: features \{text: Text, label: ClassLabel\}"
    ):
        open_tfds("imdb_reviews")
