"""Readers for the CIFAR-10 and CIFAR-100 releases, binary and python versions.

Binary release (https://www.cs.toronto.edu/~kriz/cifar.html): each record is
the label byte(s) followed by 3072 pixel bytes, the 1024 red, then green,
then blue values of a 32x32 image in row-major order. CIFAR-100 records carry
a coarse and a fine label byte; we use the fine one. Python release: pickled
dicts ``{b"data": uint8 (N, 3072), b"labels" | b"fine_labels": [int]}``
read with the restricted unpickler.
"""

from collections import Counter

import numpy as np

from kvision.data.dataset import ImageDataset, check_labels
from kvision.data.files import check_file_size
from kvision.data.safe_pickle import load_restricted_pickle
from kvision.errors import DataError

PIXELS = 32 * 32 * 3
RECORDS_PER_BATCH = 10000
CIFAR10_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))


def _to_nhwc(flat):
    """``(N, 3072)`` planar RGB rows -> ``(N, 32, 32, 3)``."""
    return np.ascontiguousarray(flat.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))


def _require(directory, names):
    missing = [n for n in names if not (directory / n).is_file()]
    if missing:
        raise DataError(
            f"{directory}: expected the files {', '.join(names)}. "
            f"Received: a directory without {', '.join(missing)}"
        )


def _read_text_names(path, num_classes):
    if not path.is_file():
        raise DataError(
            f"{path}: expected a file with {num_classes} class names, one per line. Received: no such file"
        )
    names = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    if len(names) != num_classes:
        raise DataError(
            f"{path}: expected {num_classes} class names, one per line. Received: {len(names)} names"
        )
    return names


def _read_binary_batch(path, label_bytes, num_classes):
    record = label_bytes + PIXELS
    check_file_size(path)
    data = np.fromfile(path, dtype=np.uint8)
    if data.size == 0 or data.size % record:
        raise DataError(
            f"{path}: expected a whole number of {record}-byte records ({label_bytes} label "
            f"byte(s) + {PIXELS} pixel bytes; a full batch is {RECORDS_PER_BATCH} records of "
            f"{record} = {RECORDS_PER_BATCH * record} bytes). "
            f"Received: {data.size} bytes, a truncated or wrong file"
        )
    records = data.reshape(-1, record)
    labels = records[:, label_bytes - 1].astype(np.int64)  # the last label byte is the fine label
    check_labels(labels, num_classes, str(path))
    return _to_nhwc(records[:, label_bytes:]), labels


def _concat(parts):
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _check_equal_batches(paths, record):
    """The training batches of a release are equally long; one that is not was cut short.

    This catches truncation at a record boundary, which the record-size check cannot see.
    """
    sizes = [p.stat().st_size for p in paths]
    common = Counter(sizes).most_common(1)[0][0]
    for path, size in zip(paths, sizes, strict=True):
        if size != common:
            raise DataError(
                f"{path}: expected {common} bytes ({common // record} records of {record}, like the "
                f"other training batches). Received: {size} bytes"
            )


def read_cifar10_binary(directory):
    """Read ``cifar-10-batches-bin/``: ``data_batch_{1..5}.bin``, ``test_batch.bin``, ``batches.meta.txt``."""
    files = [f"{n}.bin" for n in CIFAR10_TRAIN_BATCHES] + ["test_batch.bin"]
    _require(directory, files)
    names = _read_text_names(directory / "batches.meta.txt", 10)
    batches = [_read_binary_batch(directory / f, 1, 10) for f in files[:-1]]
    _check_equal_batches([directory / f for f in files[:-1]], 1 + PIXELS)
    train = _concat(batches)
    test = _read_binary_batch(directory / "test_batch.bin", 1, 10)
    return ImageDataset("cifar10", names, train, test, origin=str(directory))


def read_cifar100_binary(directory):
    """Read ``cifar-100-binary/``: ``train.bin``, ``test.bin``, ``fine_label_names.txt``."""
    _require(directory, ["train.bin", "test.bin"])
    names = _read_text_names(directory / "fine_label_names.txt", 100)
    train = _read_binary_batch(directory / "train.bin", 2, 100)
    test = _read_binary_batch(directory / "test.bin", 2, 100)
    return ImageDataset("cifar100", names, train, test, origin=str(directory))


def _field(obj, key, path):
    """``obj[b"key"]`` (Python 2 pickles) or ``obj["key"]`` (re-pickled by Python 3)."""
    if isinstance(obj, dict):
        for k in (key.encode(), key):
            if k in obj:
                return obj[k]
    found = f"keys {sorted(map(repr, obj))}" if isinstance(obj, dict) else type(obj).__name__
    raise DataError(f"{path}: expected a dict with the key {key!r}. Received: {found}")


def _read_python_batch(path, label_key, num_classes):
    batch = load_restricted_pickle(path)
    data = _field(batch, "data", path)
    labels = _field(batch, label_key, path)
    if (
        not isinstance(data, np.ndarray)
        or data.dtype != np.uint8
        or data.ndim != 2
        or data.shape[1] != PIXELS
    ):
        found = (
            f"{data.dtype} array of shape {data.shape}"
            if isinstance(data, np.ndarray)
            else type(data).__name__
        )
        raise DataError(
            f"{path}: expected 'data' to be a uint8 array of shape (N, {PIXELS}). Received: {found}"
        )
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError):
        raise DataError(
            f"{path}: expected {label_key!r} to be a list of integers. Received: {type(labels).__name__}"
        ) from None
    if labels.shape != (len(data),):
        raise DataError(
            f"{path}: expected {len(data)} labels, one per image. Received: labels of shape {labels.shape}"
        )
    check_labels(labels, num_classes, str(path))
    return _to_nhwc(data), labels


def _read_pickled_names(path, key, num_classes):
    names = _field(load_restricted_pickle(path), key, path)
    if not isinstance(names, list) or len(names) != num_classes:
        count = len(names) if isinstance(names, list) else type(names).__name__
        raise DataError(f"{path}: expected {key!r} to list {num_classes} class names. Received: {count}")
    return [n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n) for n in names]


def read_cifar10_python(directory):
    """Read ``cifar-10-batches-py/``: ``data_batch_{1..5}``, ``test_batch``, ``batches.meta``."""
    _require(directory, [*CIFAR10_TRAIN_BATCHES, "test_batch", "batches.meta"])
    names = _read_pickled_names(directory / "batches.meta", "label_names", 10)
    train = _concat([_read_python_batch(directory / f, "labels", 10) for f in CIFAR10_TRAIN_BATCHES])
    test = _read_python_batch(directory / "test_batch", "labels", 10)
    return ImageDataset("cifar10", names, train, test, origin=str(directory))


def read_cifar100_python(directory):
    """Read ``cifar-100-python/``: ``train``, ``test``, ``meta`` (fine labels)."""
    _require(directory, ["train", "test", "meta"])
    names = _read_pickled_names(directory / "meta", "fine_label_names", 100)
    train = _read_python_batch(directory / "train", "fine_labels", 100)
    test = _read_python_batch(directory / "test", "fine_labels", 100)
    return ImageDataset("cifar100", names, train, test, origin=str(directory))
