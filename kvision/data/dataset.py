"""The in-memory image dataset every source returns, and the checks it must pass."""

import hashlib
from dataclasses import dataclass

import numpy as np

from kvision.errors import DataError


def check_labels(labels, num_classes, where):
    """Raise ``DataError`` unless every label lies in ``[0, num_classes)``.

    ``where`` names the file or split the labels came from, so the message
    points at the data that is wrong.
    """
    if labels.size == 0:
        return
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= num_classes:
        raise DataError(
            f"{where}: expected labels in [0, {num_classes - 1}] "
            f"({num_classes} classes). Received: labels in [{low}, {high}]"
        )


def check_split(images, labels, where):
    """Raise ``DataError`` unless ``images``/``labels`` are one aligned split."""
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4:
        found = (
            f"{images.dtype} array of shape {images.shape}"
            if isinstance(images, np.ndarray)
            else type(images).__name__
        )
        raise DataError(f"{where}: expected uint8 images of shape (N, H, W, C). Received: {found}")
    if not isinstance(labels, np.ndarray) or labels.ndim != 1:
        found = f"shape {labels.shape}" if isinstance(labels, np.ndarray) else type(labels).__name__
        raise DataError(f"{where}: expected 1-D integer labels. Received: {found}")
    if len(images) != len(labels):
        raise DataError(
            f"{where}: expected one label per image. Received: {len(images)} images and {len(labels)} labels"
        )


@dataclass
class ImageDataset:
    """A labelled image dataset held in memory.

    Images are uint8 NHWC arrays (grayscale has ``C=1``), labels int64 1-D
    arrays. Construction validates both splits, so any ``ImageDataset`` a
    pipeline receives is consistent.

    Args:
        name: dataset name, e.g. ``"cifar10"``.
        class_names: one name per class; label ``i`` means ``class_names[i]``.
        train: ``(images, labels)`` of the training split.
        test: ``(images, labels)`` of the test split.
        origin: where the data was read from, e.g. a path or ``"tfds:cifar10"``.
    """

    name: str
    class_names: list[str]
    train: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]
    origin: str

    def __post_init__(self):
        self.class_names = [str(n) for n in self.class_names]
        if not self.class_names:
            raise DataError(f"{self.origin}: expected at least one class name. Received: []")
        splits = {}
        for split in ("train", "test"):
            images, labels = getattr(self, split)
            where = f"{self.origin} ({split} split)"
            check_split(images, labels, where)
            if not np.issubdtype(labels.dtype, np.integer):
                raise DataError(f"{where}: expected integer labels. Received: dtype {labels.dtype}")
            labels = labels.astype(np.int64, copy=False)
            check_labels(labels, len(self.class_names), where)
            splits[split] = (images, labels)
        if splits["train"][0].shape[1:] != splits["test"][0].shape[1:]:
            raise DataError(
                f"{self.origin}: expected train and test images of one shape. "
                f"Received: {splits['train'][0].shape[1:]} and {splits['test'][0].shape[1:]}"
            )
        self.train, self.test = splits["train"], splits["test"]

    @property
    def image_shape(self):
        """``(H, W, C)`` of every image."""
        return tuple(int(d) for d in self.train[0].shape[1:])

    @property
    def num_classes(self):
        """Number of classes, ``len(class_names)``."""
        return len(self.class_names)

    def fingerprint(self):
        """SHA-256 of the class names and both splits' images and labels: which data a model saw."""
        digest = hashlib.sha256("\n".join(self.class_names).encode())
        for images, labels in (self.train, self.test):
            for array in (images, labels):
                digest.update(str(array.shape).encode())
                digest.update(np.ascontiguousarray(array).tobytes())
        return "sha256:" + digest.hexdigest()
