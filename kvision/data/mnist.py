"""Readers for MNIST-style data: the IDX files (raw or gzipped) and Keras' ``mnist.npz``.

IDX (http://yann.lecun.com/exdb/mnist/): two zero bytes, a type byte (0x08
for unsigned bytes), the number of dimensions, one big-endian uint32 per
dimension, then the values. Fashion-MNIST ships the same four files.
"""

import gzip
import zipfile
import zlib

import numpy as np

from kvision.data.dataset import ImageDataset, check_labels
from kvision.data.files import MAX_FILE_BYTES
from kvision.errors import DataError

FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
MNIST_CLASSES = [str(d) for d in range(10)]
CLASS_NAMES = {"mnist": MNIST_CLASSES, "fashion_mnist": FASHION_MNIST_CLASSES}

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_UBYTE = 0x08
_CHUNK = 1 << 20


def find_idx_file(directory, stem):
    """``directory/stem`` or ``directory/stem.gz``, whichever exists (raw first), else None."""
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _open(path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _read_exactly(f, count):
    """``count`` bytes of ``f`` into a new uint8 array, and whether the stream has more after them.

    Filled chunk by chunk as the stream yields them, so a gzip stream that
    inflates past what its header declared costs at most ``count + 1`` bytes.
    """
    values = np.empty(count, np.uint8)
    view, filled = memoryview(values), 0
    while filled < count:
        got = f.readinto(view[filled : filled + _CHUNK])
        if not got:
            break
        filled += got
    return values[:filled], bool(f.read(1))


def read_idx(path, ndim, max_bytes=MAX_FILE_BYTES):
    """Read one IDX file of unsigned bytes with ``ndim`` dimensions as a uint8 array.

    The header is read first and the values are then read incrementally up to
    the count it declares (at most ``max_bytes``, the data-file budget); a
    file with fewer or more values is refused, and a raw file's size is
    checked before reading it.
    """
    header = 4 + 4 * ndim
    try:
        with _open(path) as f:
            head = f.read(header)
            if len(head) < header or head[:2] != b"\0\0" or head[2] != _UBYTE or head[3] != ndim:
                found = head[:4].hex(" ") if len(head) >= 4 else f"{len(head)} bytes"
                raise DataError(
                    f"{path}: expected an IDX file of unsigned bytes with {ndim} dimension(s) "
                    f"(magic 00 00 08 {ndim:02x}). Received: {found}"
                )
            shape = tuple(int(d) for d in np.frombuffer(head, dtype=">u4", count=ndim, offset=4))
            expected = int(np.prod(shape, dtype=object))
            what = f"{header + expected} bytes (header of {header} + {expected} values for shape {shape})"
            if expected > max_bytes:
                raise DataError(
                    f"{path}: expected an IDX file of at most {max_bytes} values. Received: a header declaring {what}"
                )
            if path.suffix != ".gz" and path.stat().st_size != header + expected:
                raise DataError(f"{path}: expected {what}. Received: {path.stat().st_size} bytes")
            values, more = _read_exactly(f, expected)
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise DataError(
            f"{path}: expected a complete gzip file. "
            f"Received: a truncated or corrupt file of {path.stat().st_size} bytes ({err})"
        ) from None
    if len(values) != expected or more:
        found = f"more than {header + expected}" if more else f"{header + len(values)}"
        inflated = " once inflated" if path.suffix == ".gz" else ""
        raise DataError(f"{path}: expected {what}. Received: {found} bytes{inflated}")
    return values.reshape(shape)


def _read_split(directory, images_stem, labels_stem, num_classes):
    images_path = find_idx_file(directory, images_stem)
    labels_path = find_idx_file(directory, labels_stem)
    missing = [s for s, p in ((images_stem, images_path), (labels_stem, labels_path)) if p is None]
    if missing:
        raise DataError(
            f"{directory}: expected the IDX files {images_stem}[.gz] and {labels_stem}[.gz]. "
            f"Received: a directory without {', '.join(missing)}"
        )
    images = read_idx(images_path, 3)[..., None]  # (N, H, W) -> (N, H, W, 1)
    labels = read_idx(labels_path, 1).astype(np.int64)
    if len(images) != len(labels):
        raise DataError(
            f"{labels_path}: expected one label per image of {images_path.name} ({len(images)}). "
            f"Received: {len(labels)} labels"
        )
    check_labels(labels, num_classes, str(labels_path))
    return images, labels


def read_idx_dataset(directory, name):
    """Read the four IDX files in ``directory`` as the dataset ``name`` (mnist or fashion_mnist)."""
    classes = CLASS_NAMES[name]
    train = _read_split(directory, IDX_FILES["train_images"], IDX_FILES["train_labels"], len(classes))
    test = _read_split(directory, IDX_FILES["test_images"], IDX_FILES["test_labels"], len(classes))
    return ImageDataset(name, classes, train, test, origin=str(directory))


def read_npz_dataset(path, name):
    """Read a Keras-style ``.npz`` with ``x_train``, ``y_train``, ``x_test``, ``y_test``."""
    keys = ("x_train", "y_train", "x_test", "y_test")
    try:
        with zipfile.ZipFile(path) as members:  # sizes its directory declares, which zipfile never inflates past
            declared = sum(member.file_size for member in members.infolist())
        if declared > MAX_FILE_BYTES:
            raise DataError(f"{path}: expected arrays of at most {MAX_FILE_BYTES} bytes. Received: {declared} bytes")
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in keys if k in archive.files}
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zlib.error, zipfile.BadZipFile) as err:
        raise DataError(
            f"{path}: expected a complete .npz archive of plain arrays. Received: {type(err).__name__}: {err}"
        ) from None
    missing = [k for k in keys if k not in arrays]
    if missing:
        raise DataError(f"{path}: expected the arrays {', '.join(keys)}. Received: no {', '.join(missing)}")
    splits = []
    for x, y in (("x_train", "y_train"), ("x_test", "y_test")):
        images = arrays[x][..., None] if arrays[x].ndim == 3 else arrays[x]
        splits.append((images, arrays[y]))
    return ImageDataset(name, CLASS_NAMES[name], splits[0], splits[1], origin=str(path))
