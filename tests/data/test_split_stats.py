"""train_validation_split, select_classes, labelled_subset and channel_stats."""

import numpy as np
import pytest

from kvision.data import channel_stats, labelled_subset, select_classes, stats, train_validation_split
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


def labelled(counts):
    """Images whose pixel is their index, labels with ``counts[c]`` examples of class c, interleaved."""
    labels = np.concatenate([np.full(n, c) for c, n in enumerate(counts)])
    labels = labels[np.random.default_rng(0).permutation(len(labels))]
    images = np.arange(len(labels))[:, None, None, None] * np.ones((1, 2, 2, 1), np.int64)
    return images, labels


def test_select_classes_keeps_those_classes_relabelled_in_the_order_given():
    images, labels = labelled([3, 4, 5, 6])
    x, y = select_classes(images, labels, [3, 1])
    assert len(y) == 6 + 4
    np.testing.assert_array_equal(y, np.where(labels[np.isin(labels, [3, 1])] == 3, 0, 1))
    np.testing.assert_array_equal(labels[x[:, 0, 0, 0]], np.where(y == 0, 3, 1))  # images stay with their labels
    assert np.all(np.diff(x[:, 0, 0, 0]) > 0)  # original order kept


@pytest.mark.parametrize(
    "classes, message",
    [
        ([1, 7], r"Received: classes=\[1, 7\], of which \[7\] have no examples"),
        ([2, 2], r"Expected distinct classes present in the labels \(\[0, 1, 2, 3\]\)\. Received: classes=\[2, 2\]$"),
        ([], r"Received: classes=\[\]$"),
    ],
)
def test_select_classes_rejects_missing_repeated_or_no_classes(classes, message):
    with pytest.raises(DataError, match=message):
        select_classes(*labelled([3, 4, 5, 6]), classes)


@pytest.mark.parametrize("share, expected", [(0.1, [1, 2, 10]), (0.5, [2, 10, 50]), (1.0, [3, 20, 100])])
def test_labelled_subset_keeps_a_share_of_every_class(share, expected):
    images, labels = labelled([3, 20, 100])
    x, y = labelled_subset(images, labels, share, seed=4)
    assert np.bincount(y).tolist() == expected, "round(share × count) per class, at least one"
    np.testing.assert_array_equal(labels[x[:, 0, 0, 0]], y)  # images stay with their labels
    assert np.all(np.diff(x[:, 0, 0, 0]) > 0)  # original order kept


def test_labelled_subset_is_seeded():
    images, labels = labelled([30, 30])
    first = labelled_subset(images, labels, 0.2, seed=1)[0]
    np.testing.assert_array_equal(labelled_subset(images, labels, 0.2, seed=1)[0], first)
    assert not np.array_equal(labelled_subset(images, labels, 0.2, seed=2)[0], first)


@pytest.mark.parametrize("share", [0, 0.0, 1.5, -0.1, "0.5"])
def test_labelled_subset_rejects_shares_outside_0_1(share):
    with pytest.raises(DataError, match=rf"Expected a share in \(0, 1\]\. Received: share={share!r}"):
        labelled_subset(*labelled([3, 3]), share)


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
