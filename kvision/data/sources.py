"""``open_dataset``: one call for every dataset name, in memory (small sets, the fast path) or streamed (any size).

``cifar10``, ``cifar100``, ``fashion_mnist`` and ``mnist`` load into memory
(``load_dataset`` → ``ImageDataset``); ``folder`` (alias ``image_folder``),
``tfrecord`` and ``tfds:NAME`` stream from disk (``StreamedDataset``, read
by ``stream_pipeline``).
"""

import dataclasses
import difflib

from kvision.data.folder import open_folder
from kvision.data.load import load_dataset
from kvision.data.resize import parse_image_size
from kvision.data.tfds_stream import open_tfds
from kvision.errors import DataError

IN_MEMORY_NAMES = ("cifar10", "cifar100", "fashion_mnist", "mnist")
STREAMED_NAMES = ("folder", "image_folder", "tfrecord")
SOURCE_NAMES = IN_MEMORY_NAMES + STREAMED_NAMES + ("tfds:NAME",)


def _streamed(name, data_dir, download, validation, test, seed):
    if name.startswith("tfds:"):
        return open_tfds(name.removeprefix("tfds:"), data_dir, download=download, validation=validation, test=test)
    if data_dir is None:
        raise DataError(
            f"The {name} dataset is read from a directory: expected data_dir (--data-dir). Received: data_dir=None"
        )
    if name == "tfrecord":
        from kvision.data.tfrecord import open_tfrecords  # the shards' reader, only needed on this path

        return open_tfrecords(data_dir)
    return open_folder(data_dir, validation=validation, test=test, seed=seed)


def open_dataset(name, data_dir=None, *, download=True, image_size=None, validation=0.05, test=0.1, seed=0):
    """The dataset ``name``: an ``ImageDataset`` in memory, or a ``StreamedDataset`` read as it is used.

    Args:
        name: one of ``SOURCE_NAMES``: ``cifar10``, ``cifar100``,
            ``fashion_mnist``, ``mnist`` (in memory); ``folder`` or
            ``image_folder`` (a folder of class folders), ``tfrecord`` (the
            shards ``kvision.data.convert`` writes), ``tfds:NAME`` (any TFDS
            image-classification dataset), streamed.
        data_dir: where the data is (needed by ``folder`` and ``tfrecord``;
            TFDS's ``data_dir`` for ``tfds:NAME``).
        download: whether TFDS may download a dataset not found locally.
        image_size: ``(height, width)`` or an int. In-memory images are
            resized to it; a streamed dataset's ``image_size`` is set to it,
            so ``stream_pipeline`` resizes to it (``None``: the native size,
            which a streamed dataset may not have).
        validation, test: shares carved from the training data of a streamed
            source that has no such split (folders by a hash of each file's
            path, TFDS by split slicing); in-memory sets are not carved here.
        seed: salt of a folder's hash split.

    Raises:
        DataError: the name is unknown (the known ones are listed), or the
            source's own errors (missing data, bad folders, unknown TFDS name).
    """
    if name in IN_MEMORY_NAMES:
        return load_dataset(name, data_dir, download=download, image_size=image_size)
    if name not in STREAMED_NAMES and not name.startswith("tfds:"):
        close = difflib.get_close_matches(name, SOURCE_NAMES, n=3)
        raise DataError(
            f"Unknown dataset name. Expected one of: {', '.join(SOURCE_NAMES)}"
            + (f" (close: {', '.join(close)})" if close else "")
            + f". Received: name={name!r}"
        )
    dataset = _streamed(name, data_dir, download, validation, test, seed)
    if image_size is None:
        return dataset
    return dataclasses.replace(dataset, image_size=parse_image_size(image_size))
