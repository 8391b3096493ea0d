"""Streamed image folders: layouts, the hash split, sharding, shuffling, channels, pixels, errors."""

import logging
import os

import numpy as np
import pytest
import tensorflow as tf

from kvision.data.folder import open_folder
from kvision.data.split import split_of
from kvision.data.stream import stream_pipeline
from kvision.errors import DataError
from tests.bombs import encode
from tests.data import writers


def write_classes(root, per_class, classes=("ant", "bee", "cat"), size=(6, 5), channels=3, start=0):
    """``per_class`` PNGs in each ``root/<class>/``; returns ``{path: (image, label)}``."""
    written = {}
    for label, name in enumerate(classes):
        images = writers.random_images(per_class, *size, channels, seed=start + label)
        for i, image in enumerate(images):
            path = writers.write_image(root / name / f"{start + i:04d}.png", image)
            written[str(path)] = (image, label)
    return written


def ids(split, **options):
    return [i.decode() for _, _, i in split.read(**options).as_numpy_iterator()]


def test_class_tree_is_split_by_hash_of_relative_path(tmp_path, caplog):
    written = write_classes(tmp_path, 20)
    (tmp_path / "ant" / "notes.txt").write_text("not an image")
    (tmp_path / "bee" / ".hidden.png").write_bytes(b"skipped")
    with caplog.at_level(logging.WARNING, logger="kvision.data.folder"):
        dataset = open_folder(tmp_path, validation=0.2, test=0.2, seed=3)
    assert "ignored 1 non-image files" in caplog.text
    assert dataset.class_names == ["ant", "bee", "cat"] and dataset.origin == str(tmp_path)
    assert dataset.channels == 3 and dataset.image_size == (6, 5) and len(dataset.fingerprint) == 64
    seen = {}
    for name, split in dataset.splits.items():
        for path in ids(split):
            seen[path] = name
            assert split_of(os.path.relpath(path, tmp_path), validation=0.2, test=0.2, seed=3) == name
    assert sorted(seen) == sorted(written) and sum(dataset.counts().values()) == 60
    assert all(count == len([p for p in seen if seen[p] == name]) for name, count in dataset.counts().items())


def test_a_file_never_changes_split_when_files_are_added(tmp_path):
    write_classes(tmp_path, 15)
    old = open_folder(tmp_path)
    before = {path: name for name, split in old.splits.items() for path in ids(split)}
    assert open_folder(tmp_path).fingerprint == old.fingerprint
    write_classes(tmp_path, 15, start=100)
    new = open_folder(tmp_path)
    after = {path: name for name, split in new.splits.items() for path in ids(split)}
    assert len(after) == 90 and all(after[path] == name for path, name in before.items())
    assert new.fingerprint != old.fingerprint


def test_presplit_folders_are_kept_and_missing_validation_is_carved_from_train(tmp_path):
    train = write_classes(tmp_path / "train", 20)
    test = write_classes(tmp_path / "test", 2, classes=("bee",))
    dataset = open_folder(tmp_path, validation=0.25)
    assert dataset.class_names == ["ant", "bee", "cat"]
    assert sorted(ids(dataset.splits["test"])) == sorted(test)
    assert [label for _, label, _ in dataset.splits["test"].read().as_numpy_iterator()] == [1, 1]
    carved = ids(dataset.splits["validation"]) + ids(dataset.splits["train"])
    assert sorted(carved) == sorted(train) and 0 < dataset.counts()["validation"] < 30

    validation = write_classes(tmp_path / "validation", 1)
    dataset = open_folder(tmp_path)
    assert sorted(ids(dataset.splits["validation"])) == sorted(validation)
    assert sorted(ids(dataset.splits["train"])) == sorted(train)


def test_two_input_pipelines_read_disjoint_parts_that_cover_the_split(tmp_path):
    write_classes(tmp_path, 10)
    split = open_folder(tmp_path, test=0.3).splits["train"]
    parts = [ids(split, input_context=tf.distribute.InputContext(2, i)) for i in range(2)]
    assert not set(parts[0]) & set(parts[1]) and all(parts)
    assert sorted(parts[0] + parts[1]) == sorted(ids(split)) and len(ids(split)) == split.count


def test_shuffle_is_seeded_and_reshuffled_each_epoch(tmp_path):
    write_classes(tmp_path, 10)
    split = open_folder(tmp_path, test=0.3).splits["train"]
    assert ids(split) == sorted(ids(split))
    assert ids(split, shuffle=True, seed=1) == ids(split, shuffle=True, seed=1) != ids(split, shuffle=True, seed=2)
    epochs = split.read(shuffle=True, seed=1)
    first, second = ([i for _, _, i in epochs.as_numpy_iterator()] for _ in range(2))
    assert first != second and sorted(first) == sorted(second)


def test_channels_one_only_when_every_image_is_grey(tmp_path):
    grey = writers.random_images(3, 4, 4, 1)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "g.png").write_bytes(encode(grey[0][..., 0], "PNG"))
    (tmp_path / "a" / "g.jpg").write_bytes(encode(grey[1][..., 0], "JPEG"))
    (tmp_path / "a" / "g.BMP").write_bytes(encode(grey[2][..., 0], "BMP"))
    assert open_folder(tmp_path, validation=0, test=0.5).channels == 1

    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "c.jpeg").write_bytes(encode(writers.random_images(1, 4, 4)[0], "JPEG"))
    assert open_folder(tmp_path, validation=0, test=0.5).channels == 3
    writers.write_image(tmp_path / "b" / "big.png", writers.random_images(1, 9, 9)[0])
    dataset = open_folder(tmp_path, validation=0, test=0.5)
    assert dataset.channels == 3 and dataset.image_size is None


def test_stream_pipeline_decodes_the_files_pixels_and_labels(tmp_path):
    written = write_classes(tmp_path, 4)
    split = open_folder(tmp_path, test=0.3).splits["train"]
    images, labels = next(iter(stream_pipeline(split, image_shape=(6, 5, 3), batch_size=split.count, training=False)))
    for image, label, path in zip(images.numpy(), labels.numpy(), ids(split), strict=True):
        np.testing.assert_array_equal(image, written[path][0])
        assert label == written[path][1]


def no_class_folders(root):
    (root / "x.png").write_bytes(b"")


def empty_class(root):
    (root / "a" / "sub").mkdir(parents=True)


def only_text_files(root):
    (root / "a").mkdir()
    for i in range(3):
        (root / "a" / f"{i}.txt").write_text("x")


def link_to_a_huge_file(root):
    write_classes(root, 1)
    with open(root / "huge.bin", "wb") as f:  # sparse: no disk used
        f.truncate(100 * 2**30)
    os.symlink(root / "huge.bin", root / "ant" / "photo.jpg")


def unknown_test_class(root):
    write_classes(root / "train", 1)
    write_classes(root / "test", 1, classes=("dog",))


@pytest.mark.parametrize(
    "make, message",
    [
        (None, r"Expected an image folder with class folders\. Received: .*missing is not a directory"),
        (no_class_folders, r"expected class folders \(<class>/<image>\).* Received: no folders"),
        (empty_class, r"/a: expected images .* Received: an empty folder"),
        (only_text_files, r"/a: expected images .* Received: no images, 3 non-image files"),
        (link_to_a_huge_file, r"/ant/photo.jpg: expected an image file of at most 20971520 bytes\. Received: 107374182400"),
        (unknown_test_class, r"/test: expected only class folders that also exist under train/ \(ant, bee, cat\)\. Received: dog"),
    ],
)
def test_errors_say_what_was_expected_and_received(tmp_path, make, message):
    if make is not None:
        make(tmp_path)
    with pytest.raises(DataError, match=message):
        open_folder(tmp_path if make else tmp_path / "missing")
