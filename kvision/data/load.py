"""``load_dataset``: find a dataset on disk or through TFDS, and say exactly where it looked."""

import dataclasses
from pathlib import Path

from kvision.data.archives import keras_home
from kvision.data.formats import FORMATS, Attempts, expected_files, find_dataset
from kvision.data.resize import parse_image_size, resize_uint8
from kvision.data.tfds_source import TFDS_NAMES, load_tfds
from kvision.errors import DataError

# Debian's dataset-* packages install here (e.g. dataset-fashion-mnist).
SYSTEM_DATASETS_DIR = Path("/usr/share/datasets")
DATASET_NAMES = tuple(FORMATS)
_APT_PACKAGES = {"fashion_mnist": ("dataset-fashion-mnist", "fashion-mnist")}


def default_locations(name):
    """Where ``name`` is looked for when no ``data_dir`` is given, in order."""
    cache = keras_home() / "datasets"
    return {
        "cifar10": [
            cache / "cifar-10-batches-py",  # Keras 2
            cache / "cifar-10-batches-py-target" / "cifar-10-batches-py",  # Keras 3
        ],
        "cifar100": [
            cache / "cifar-100-python",
            cache / "cifar-100-python-target" / "cifar-100-python",
        ],
        "fashion_mnist": [SYSTEM_DATASETS_DIR / "fashion-mnist", cache / "fashion-mnist"],
        "mnist": [cache / "mnist.npz"],
        "image_folder": [],
    }[name]


def _how_to_get(name, data_dir):
    ways = []
    if name in TFDS_NAMES:
        ways.append(
            f"let TensorFlow Datasets download it (needs internet): TFDS name {TFDS_NAMES[name]!r}, "
            f"load_dataset({name!r}, download=True)" + (" without data_dir" if data_dir is not None else "")
        )
    if name in _APT_PACKAGES:
        package, folder = _APT_PACKAGES[name]
        ways.append(f"apt-get install {package} (installs it in {SYSTEM_DATASETS_DIR / folder})")
    ways.append(
        "pass data_dir (--data-dir) pointing at a folder, archive or file with one of: "
        + "; ".join(expected_files(name))
    )
    return "\n".join(f"  - {way}" for way in ways)


def _not_found(name, attempts, data_dir, download, tfds_reason):
    tried = attempts.lines()
    if data_dir is None and name in TFDS_NAMES:
        status = f"failed: {tfds_reason}" if download else "not tried (download=False)"
        tried.append(f"  - TFDS {TFDS_NAMES[name]!r}: {status}")
    return DataError(
        f"Could not find the {name} dataset. Tried:\n" + "\n".join(tried) + "\n"
        f"To get it, one of:\n{_how_to_get(name, data_dir)}\n"
        f"Received: name={name!r}, data_dir={None if data_dir is None else str(data_dir)!r}, "
        f"download={download}"
    )


def first_line(err):
    """``Type: first line of the message`` of ``err``, at most 300 characters: an error inside a longer message."""
    lines = str(err).strip().splitlines()
    line = lines[0] if lines else ""
    text = f"{type(err).__name__}: {line}" if line else type(err).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _resized(dataset, size):
    if size is None or dataset.image_shape[:2] == size:
        return dataset
    (x_train, y_train), (x_test, y_test) = dataset.train, dataset.test
    return dataclasses.replace(
        dataset, train=(resize_uint8(x_train, size), y_train), test=(resize_uint8(x_test, size), y_test)
    )


def load_dataset(name, data_dir=None, *, download=True, image_size=None):
    """Load a labelled image dataset into memory.

    With ``data_dir``, only that folder (or archive, or file) is read; its
    format is detected: the CIFAR binary or python releases (extracted or as
    the original ``.tar.gz``), MNIST-style IDX files, a Keras ``.npz``, or a
    ``train/<class>/``, ``test/<class>/`` image folder. Without it, local
    copies are looked for first (Debian's ``dataset-fashion-mnist``, Keras'
    download cache), then TFDS downloads the data when ``download`` is true.

    Args:
        name: one of ``"cifar10"``, ``"cifar100"``, ``"fashion_mnist"``,
            ``"mnist"``, ``"image_folder"`` (which needs ``data_dir``).
        data_dir: where the data is; ``None`` searches the default places.
        download: whether TFDS may download the data when no local copy exists.
        image_size: ``(height, width)`` or an int to resize every image to;
            ``None`` keeps the native size.

    Returns:
        An ``ImageDataset`` with uint8 NHWC images and int64 labels.

    Raises:
        DataError: the name is unknown, the data is nowhere to be found (the
            message lists every path tried and how to get the data), or a file
            is truncated, corrupt or unsafe (the message names the file).
    """
    if name not in FORMATS:
        raise DataError(
            f"Unknown dataset name. Expected one of: {', '.join(DATASET_NAMES)}. Received: name={name!r}"
        )
    size = None if image_size is None else parse_image_size(image_size)
    attempts = Attempts()
    if data_dir is not None:
        dataset = find_dataset(Path(data_dir).expanduser(), name, size, attempts)
        if dataset is None:
            raise _not_found(name, attempts, data_dir, download, tfds_reason=None)
        return _resized(dataset, size)
    if name == "image_folder":
        raise DataError(
            "The image_folder dataset is read from a directory: expected data_dir=<folder with "
            "train/<class>/ and test/<class>/>. Received: data_dir=None"
        )
    for location in default_locations(name):
        dataset = find_dataset(location, name, size, attempts)
        if dataset is not None:
            return _resized(dataset, size)
    tfds_reason = None
    if download:
        try:
            dataset = load_tfds(name)
        except Exception as err:
            # TFDS fails in many ways (network, disk, checksum, missing extras); all mean "not available".
            tfds_reason = first_line(err)
        else:
            return _resized(dataset, size)
    raise _not_found(name, attempts, data_dir, download, tfds_reason)
