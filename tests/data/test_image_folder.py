"""Class-per-folder image directories: PNG/JPEG decoding, sizes, channels, errors."""

import numpy as np
import pytest
import tensorflow as tf

from kvision.data import load_dataset
from kvision.errors import DataError
from tests.data import writers


def test_png_and_jpeg_round_trip(tmp_path):
    images = writers.random_images(6, 8, 10, 3, seed=5)
    writers.write_image(tmp_path / "train" / "zebra" / "a.png", images[0])
    writers.write_image(tmp_path / "train" / "ant" / "b.PNG", images[1])
    writers.write_image(tmp_path / "train" / "ant" / "a.png", images[2])
    jpeg = writers.write_image(tmp_path / "train" / "zebra" / "c.jpg", images[3], fmt="jpeg")
    writers.write_image(tmp_path / "test" / "zebra" / "d.png", images[4])
    (tmp_path / "train" / "ant" / "notes.txt").write_text("not an image")

    dataset = load_dataset("image_folder", tmp_path)
    assert dataset.class_names == ["ant", "zebra"]
    assert dataset.origin == str(tmp_path) and dataset.image_shape == (8, 10, 3)
    # Class order, then file name order: ant/a.png, ant/b.PNG, zebra/a.png, zebra/c.jpg.
    np.testing.assert_array_equal(dataset.train[1], [0, 0, 1, 1])
    np.testing.assert_array_equal(dataset.train[0][:3], images[[2, 1, 0]])
    np.testing.assert_array_equal(dataset.train[0][3], tf.io.decode_jpeg(jpeg.read_bytes()).numpy())
    np.testing.assert_array_equal(dataset.test[0], images[4:5])
    np.testing.assert_array_equal(dataset.test[1], [1])


def test_mixed_sizes_need_image_size(tmp_path):
    big = writers.write_image(tmp_path / "train" / "a" / "big.png", writers.random_images(1, 12, 12)[0])
    small = writers.write_image(tmp_path / "train" / "b" / "small.png", writers.random_images(1, 6, 6)[0])
    writers.write_image(tmp_path / "test" / "a" / "t.png", writers.random_images(1, 12, 12)[0])
    with pytest.raises(DataError, match=rf"Received: {big} is 12x12, {small} is 6x6"):
        load_dataset("image_folder", tmp_path)
    dataset = load_dataset("image_folder", tmp_path, image_size=(6, 4))
    assert dataset.train[0].shape == (2, 6, 4, 3) and dataset.test[0].shape == (1, 6, 4, 3)


def test_resize_of_constant_image_keeps_value(tmp_path):
    writers.write_image(tmp_path / "train" / "a" / "x.png", np.full((9, 9, 3), 77, np.uint8))
    writers.write_image(tmp_path / "test" / "a" / "y.png", np.full((5, 5, 3), 200, np.uint8))
    dataset = load_dataset("image_folder", tmp_path, image_size=4)
    assert np.all(dataset.train[0] == 77) and np.all(dataset.test[0] == 200)


def test_grayscale_only_stays_one_channel_and_mixed_becomes_rgb(tmp_path):
    gray = writers.random_images(2, 5, 5, 1, seed=7)
    writers.write_image(tmp_path / "train" / "a" / "g.png", gray[0])
    writers.write_image(tmp_path / "test" / "a" / "g.png", gray[1])
    assert load_dataset("image_folder", tmp_path).image_shape == (5, 5, 1)

    rgb = writers.random_images(1, 5, 5, 3, seed=8)[0]
    writers.write_image(tmp_path / "train" / "b" / "c.png", rgb)
    dataset = load_dataset("image_folder", tmp_path)
    assert dataset.image_shape == (5, 5, 3)
    np.testing.assert_array_equal(dataset.train[0][0], np.repeat(gray[0], 3, axis=-1))
    np.testing.assert_array_equal(dataset.train[0][1], rgb)


def test_rgba_drops_alpha(tmp_path):
    rgba = writers.random_images(1, 4, 4, 4, seed=9)[0]
    writers.write_image(tmp_path / "train" / "a" / "x.png", rgba)
    writers.write_image(tmp_path / "test" / "a" / "x.png", rgba)
    np.testing.assert_array_equal(load_dataset("image_folder", tmp_path).train[0][0], rgba[..., :3])


def test_corrupt_image_is_named(tmp_path):
    writers.write_image(tmp_path / "train" / "a" / "ok.png", writers.random_images(1, 4, 4)[0])
    bad = tmp_path / "test" / "a" / "bad.jpg"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(
        DataError, match=rf"{bad}: expected a JPEG, PNG, GIF or BMP image\. Received: an undecodable file \(Invalid JPEG data"
    ):
        load_dataset("image_folder", tmp_path)


def test_test_class_missing_from_train(tmp_path):
    writers.write_image(tmp_path / "train" / "a" / "x.png", writers.random_images(1, 4, 4)[0])
    writers.write_image(tmp_path / "test" / "b" / "x.png", writers.random_images(1, 4, 4)[0])
    with pytest.raises(
        DataError, match=r"expected only class folders that also exist under train/ \(a\)\. Received: b"
    ):
        load_dataset("image_folder", tmp_path)


def test_missing_test_folder(tmp_path):
    writers.write_image(tmp_path / "train" / "a" / "x.png", writers.random_images(1, 4, 4)[0])
    with pytest.raises(
        DataError, match=r"expected the folders train/<class>/ and test/<class>/\. Received: no test/ folder"
    ):
        load_dataset("image_folder", tmp_path)


def test_image_folder_needs_data_dir():
    with pytest.raises(DataError, match=r"expected data_dir=.*Received: data_dir=None"):
        load_dataset("image_folder")
