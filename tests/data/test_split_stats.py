"""train_validation_split and channel_stats."""

import numpy as np
import pytest

from kvision.data import channel_stats, stats, train_validation_split
from kvision.errors import DataError


def make(n=20):
    images = np.arange(n, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 2, 1), np.uint8)
    return images, np.arange(n, dtype=np.int64)


@pytest.mark.parametrize("size, expected", [(5, 5), (0.25, 5), (0.0, 0), (1, 1)])
def test_split_sizes_and_disjoint_cover(size, expected):
    images, labels = make()
    (x_train, y_train), (x_val, y_val) = train_validation_split(images, labels, size, seed=3)
    assert len(y_val) == expected and len(y_train) == 20 - expected
    assert sorted(np.concatenate([y_train, y_val]).tolist()) == list(range(20))
    np.testing.assert_array_equal(x_train[:, 0, 0, 0], y_train)  # images stay with their labels
    np.testing.assert_array_equal(x_val[:, 0, 0, 0], y_val)
    assert np.all(np.diff(y_train) > 0)  # original order kept


def test_split_is_seeded():
    images, labels = make()
    first = train_validation_split(images, labels, 6, seed=1)[1][1]
    np.testing.assert_array_equal(train_validation_split(images, labels, 6, seed=1)[1][1], first)
    assert not np.array_equal(train_validation_split(images, labels, 6, seed=2)[1][1], first)


def test_empty_validation_keeps_shape():
    images, labels = make()
    _, (x_val, y_val) = train_validation_split(images, labels, 0)
    assert x_val.shape == (0, 2, 2, 1) and y_val.shape == (0,)


@pytest.mark.parametrize("size", [-1, 20, 1.0, -0.1, "5", True])
def test_split_rejects_bad_size(size):
    with pytest.raises(
        DataError,
        match=rf"Expected size to be a count in \[0, 20\) or a fraction in \[0, 1\)\. Received: size={size!r}",
    ):
        train_validation_split(*make(), size)


def test_split_rejects_misaligned_arrays():
    images, labels = make()
    with pytest.raises(DataError, match="of the same length N"):
        train_validation_split(images, labels[:-1], 2)


@pytest.mark.parametrize("chunk_values", [1 << 22, 50])  # one chunk, and several uneven chunks
def test_channel_stats_matches_numpy(monkeypatch, chunk_values):
    monkeypatch.setattr(stats, "_CHUNK_VALUES", chunk_values)
    images = np.random.default_rng(0).integers(0, 256, (7, 5, 4, 3), dtype=np.uint8)
    images[..., 2] //= 4  # channels with different statistics
    mean, std = channel_stats(images)
    assert mean.dtype == np.float32 and mean.shape == (3,) and std.shape == (3,)
    np.testing.assert_allclose(mean, images.mean(axis=(0, 1, 2)), rtol=1e-6)
    np.testing.assert_allclose(std, images.std(axis=(0, 1, 2)), rtol=1e-5)


def test_channel_stats_rejects_non_images():
    with pytest.raises(DataError, match=r"shape \(N, H, W, C\)\. Received: shape \(3, 4\)"):
        channel_stats(np.zeros((3, 4), np.uint8))
