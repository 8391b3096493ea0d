"""The bounded image decoder: sizes from headers, budgets refused before decoding, one GIF frame."""

import gzip
import os
import tarfile
import zipfile

import numpy as np
import pytest
import tensorflow as tf

from kvision.data import archives, cifar, files, mnist
from kvision.data.decode import ImageLimits, decode_image, decode_images, read_image_file
from kvision.data.mnist import read_idx
from kvision.errors import DataError
from tests import bombs
from tests.data import writers

RNG = np.random.default_rng(0)
COLOUR = RNG.integers(0, 256, (37, 23, 3), dtype=np.uint8)
MODES = {"L": COLOUR[..., 0], "RGB": COLOUR, "RGBA": np.dstack([COLOUR, COLOUR[..., :1]])}


@pytest.mark.parametrize("fmt, mode", [("PNG", "L"), ("PNG", "RGB"), ("PNG", "RGBA"), ("JPEG", "L"), ("JPEG", "RGB"),
                                       ("BMP", "L"), ("BMP", "RGB"), ("BMP", "RGBA"), ("GIF", "L"), ("GIF", "RGB")])
def test_every_format_decodes_as_tensorflow_does_at_its_header_size(fmt, mode):
    encoded = bombs.encode(MODES[mode], fmt)
    image = decode_image(tf.constant(encoded)).numpy()
    expected = tf.io.decode_image(encoded, expand_animations=False).numpy()
    assert image.shape[:2] == (37, 23)
    np.testing.assert_array_equal(image, expected)
    grey, colour = decode_image(tf.constant(encoded), 1).numpy(), decode_image(tf.constant(encoded), 3).numpy()
    assert grey.shape == (37, 23, 1) and colour.shape == (37, 23, 3)
    if mode == "L":
        np.testing.assert_array_equal(colour, np.repeat(grey, 3, axis=-1))
    elif fmt != "JPEG":  # colour → grey with the luma weights, to a level (a JPEG gives its own luma plane)
        luma = tf.image.rgb_to_grayscale(expected[..., :3]).numpy().astype(int)
        assert np.abs(grey.astype(int) - luma).max() <= 1


@pytest.mark.parametrize("bomb, size", [
    (bombs.png_bomb(23_000, 23_000), "23000 x 23000"),
    (bombs.jpeg_bomb(60_000, 50_000), "60000 x 50000"),
    (bombs.gif_bomb(64, 64, 1)[:6] + bytes([0x60, 0xEA, 0x50, 0xC3]) + bombs.gif_bomb(64, 64, 1)[10:], "50000 x 60000"),
    (bombs.bmp_bomb(-30_000, 30_000), "30000 x 30000"),  # negative height: a top-down BMP
])  # fmt: skip
def test_an_image_over_the_pixel_budget_is_refused_from_its_header(bomb, size):
    assert len(bomb) < 600_000
    with pytest.raises(tf.errors.InvalidArgumentError, match=rf"at most 40000000 pixels. Received: {size} = "):
        decode_image(tf.constant(bomb), 3)


def test_budgets_are_settable_and_the_byte_budget_comes_first():
    encoded = bombs.encode(COLOUR, "PNG")
    assert decode_image(tf.constant(encoded), 3, ImageLimits(max_pixels=37 * 23)).shape == (37, 23, 3)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"at most 850 pixels. Received: 37 x 23 = 851"):
        decode_image(tf.constant(encoded), 3, ImageLimits(max_pixels=850))
    with pytest.raises(tf.errors.InvalidArgumentError, match=rf"at most 100 bytes. Received: {len(encoded)} bytes"):
        decode_image(tf.constant(encoded), 3, ImageLimits(max_bytes=100))
    with pytest.raises(ValueError, match="max_pixels must be a positive integer"):
        ImageLimits(max_pixels=0)


def test_other_formats_and_garbage_are_refused_by_name():
    for data in (b"", b"hello", b"RIFF\0\0\0\0WEBPVP8 "):
        with pytest.raises(tf.errors.InvalidArgumentError, match="expected a JPEG, PNG, GIF or BMP image"):
            decode_image(tf.constant(data))


def test_an_animated_gif_gives_its_first_frame_without_decoding_the_others():
    frames = [np.full((40, 50), value, np.uint8) for value in (0, 255, 128)]
    frames[0][5:9, 7:30] = 255
    animated = bombs.gif_frames(frames)
    assert tf.io.decode_gif(animated).shape[0] == 3
    np.testing.assert_array_equal(decode_image(tf.constant(animated), 1).numpy()[..., 0], frames[0])
    # 300 frames of 2000×2000 would be 3.6 GB decoded; with the first frame only, a one-frame budget passes.
    bomb = bombs.gif_bomb(2000, 2000, 300)
    assert len(bomb) < 2_000_000
    image = decode_image(tf.constant(bomb), 3, ImageLimits(max_pixels=2000 * 2000))
    assert image.shape == (2000, 2000, 3) and int(tf.reduce_max(image)) == 0


def test_a_gif_of_crafted_block_chains_or_cut_short_is_refused():
    head, frame = bombs.gif_parts(bombs.encode(np.zeros((8, 8), np.uint8), "GIF"))
    chain = head + b"\x21\xfe\x00" * 20_000 + frame + b"\x3b"  # 20 000 empty comment extensions
    with pytest.raises(tf.errors.InvalidArgumentError, match="first frame ends within 1416 blocks"):
        decode_image(tf.constant(chain), limits=ImageLimits(max_bytes=100_000))
    with pytest.raises(tf.errors.InvalidArgumentError, match="a malformed GIF of"):
        decode_image(tf.constant(head + frame[: len(frame) // 2]))


def test_a_batch_of_bytes_is_checked_before_decoding():
    decode = tf.function(lambda batch: decode_images(batch, (8, 8, 1), ImageLimits(max_batch=3)))
    png = bombs.encode(COLOUR[..., 0], "PNG")
    assert decode(tf.constant([png] * 3)).shape == (3, 8, 8, 1)
    for batch, shape in ((tf.constant([], tf.string), r"\[0\]"), (tf.constant([png] * 4), r"\[4\]")):
        with pytest.raises(tf.errors.InvalidArgumentError,
                           match=rf"serving_default expects a string batch of encoded images of shape \[N\] with "
                                 rf"1 <= N <= 3. Received: the shape {shape}"):
            decode(batch)


def test_image_files_are_checked_for_size_before_they_are_read(tmp_path):
    huge = tmp_path / "huge.bin"
    with open(huge, "wb") as f:  # sparse: 100 GiB that take no disk
        f.truncate(100 * 2**30)
    link = tmp_path / "photo.png"
    os.symlink(huge, link)
    with pytest.raises(DataError, match=rf"{link}: expected an image file of at most 20971520 bytes. "
                                        rf"Received: {100 * 2**30} bytes"):
        read_image_file(link)
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(bombs.png_bomb(10_000, 10_000))
    with pytest.raises(DataError, match=rf"{bomb}: expected an image of at most 40000000 pixels. "
                                        r"Received: 10000 x 10000 = 100000000 pixels"):
        read_image_file(bomb)
    with pytest.raises(DataError, match=rf"{tmp_path}: expected an image file. Received: not a regular file"):
        read_image_file(tmp_path)


def test_an_idx_gzip_stream_is_read_against_its_header(tmp_path):
    images = writers.random_images(5, 28, 28, 1)[..., 0]
    good = tmp_path / "good-idx3-ubyte.gz"
    good.write_bytes(gzip.compress(writers.idx_bytes(images)))
    np.testing.assert_array_equal(read_idx(good, 3), images)
    bomb = tmp_path / "bomb-idx3-ubyte.gz"  # declares 5 images, inflates to 200 MB
    with gzip.open(bomb, "wb") as f:
        f.write(writers.idx_bytes(images))
        for _ in range(200):
            f.write(bytes(2**20))
    assert bomb.stat().st_size < 500_000
    with pytest.raises(DataError, match=r"expected 3936 bytes .* Received: more than 3936 bytes once inflated"):
        read_idx(bomb, 3)
    huge = tmp_path / "huge-idx3-ubyte.gz"  # declares 60 000 × 28 × 28 values over a budget of 1 MB
    huge.write_bytes(gzip.compress(writers.idx_bytes(np.zeros((60_000, 28, 28), np.uint8))))
    with pytest.raises(DataError, match=r"at most 1000000 values. Received: a header declaring 47040016 bytes"):
        read_idx(huge, 3, max_bytes=1_000_000)
    short = tmp_path / "short-idx3-ubyte"
    short.write_bytes(writers.idx_bytes(images)[:-10])
    with pytest.raises(DataError, match=r"expected 3936 bytes .* Received: 3926 bytes"):
        read_idx(short, 3)


def test_data_files_over_the_budget_are_refused_before_they_are_read(tmp_path, monkeypatch):
    for module in (files, archives, mnist):
        monkeypatch.setattr(module, "MAX_FILE_BYTES", 10_000)
    big = tmp_path / "data_batch_1.bin"
    with open(big, "wb") as f:
        f.truncate(10 * 2**30)
    with pytest.raises(DataError, match=rf"{big}: expected a data file of at most 10000 bytes. Received: {10 * 2**30}"):
        cifar._read_binary_batch(big, 1, 10)
    npz = tmp_path / "fashion_mnist.npz"
    with zipfile.ZipFile(npz, "w", zipfile.ZIP_DEFLATED) as archive:  # 20 kB of zeros, a few hundred bytes stored
        archive.writestr("x_train.npy", bytes(20_000))
    with pytest.raises(DataError, match=r"expected arrays of at most 10000 bytes. Received: 20000 bytes"):
        mnist.read_npz_dataset(npz, "fashion_mnist")
    tar = tmp_path / "cifar-10-binary.tar.gz"
    zeros = tmp_path / "zeros"
    zeros.write_bytes(bytes(8_000))
    with tarfile.open(tar, "w:gz") as archive:  # two members of 8 kB, 16 kB in all
        archive.add(zeros, arcname="cifar-10-batches-bin/c")
        archive.add(zeros, arcname="cifar-10-batches-bin/d")
    with pytest.raises(DataError, match=r"extracting to at most 10000 bytes. Received: more, by member '.*/d'"):
        archives.extract_archive(tar)
