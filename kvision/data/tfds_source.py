"""Load a dataset through TensorFlow Datasets (downloads and prepares it on first use)."""

import numpy as np

from kvision.data.dataset import ImageDataset

TFDS_NAMES = {
    "cifar10": "cifar10",
    "cifar100": "cifar100",
    "fashion_mnist": "fashion_mnist",
    "mnist": "mnist",
}


def load_tfds(name):
    """Load ``name``'s train and test splits as numpy arrays with ``tfds.load``.

    Errors from TFDS (no network, no disk space) propagate; the caller turns
    them into a ``DataError`` that lists every source tried.
    """
    import tensorflow_datasets as tfds  # slow to import; only needed on this path

    tfds_name = TFDS_NAMES[name]
    (train, test), info = tfds.load(
        tfds_name, split=["train", "test"], as_supervised=True, batch_size=-1, with_info=True
    )
    train, test = tfds.as_numpy(train), tfds.as_numpy(test)
    return ImageDataset(
        name,
        list(info.features["label"].names),
        (np.asarray(train[0], dtype=np.uint8), np.asarray(train[1], dtype=np.int64)),
        (np.asarray(test[0], dtype=np.uint8), np.asarray(test[1], dtype=np.int64)),
        origin=f"tfds:{tfds_name}",
    )
