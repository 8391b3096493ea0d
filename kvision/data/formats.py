"""Which on-disk formats hold each dataset, and how to recognise one in a directory.

``find_dataset(location, name, ...)`` looks at ``location`` (a directory, an
archive or an ``.npz`` file) for every format that can hold ``name`` and
reads the first one it recognises. Every path it looks at is recorded in an
``Attempts`` so a failure can say exactly where the data was expected.
"""

from collections.abc import Callable
from dataclasses import dataclass

from kvision.data import cifar, image_folder, mnist
from kvision.data.archives import extract_archive, is_archive


@dataclass(frozen=True)
class Format:
    """One on-disk layout of a dataset.

    Attributes:
        description: human name, e.g. ``"CIFAR-10 binary release"``.
        markers: file (or folder) names, any of which identifies the format.
        expected: what the user should provide, for error messages.
        read: ``read(directory, name, image_size) -> ImageDataset``.
        dirname: the folder the release unpacks to, looked for inside a location.
        archives: archive file names the release is distributed as.
    """

    description: str
    markers: tuple
    expected: str
    read: Callable
    dirname: str | None = None
    archives: tuple = ()

    def marker_names(self, name):
        return [m.format(name=name) for m in self.markers]

    def matches(self, directory, name):
        return any((directory / m).exists() for m in self.marker_names(name))


CIFAR10_BINARY = Format(
    "CIFAR-10 binary release", ("data_batch_1.bin",),
    "cifar-10-batches-bin/ (data_batch_1.bin .. data_batch_5.bin, test_batch.bin, batches.meta.txt) "
    "or cifar-10-binary.tar.gz",
    lambda d, name, size: cifar.read_cifar10_binary(d),
    dirname="cifar-10-batches-bin", archives=("cifar-10-binary.tar.gz",),
)  # fmt: skip
CIFAR10_PYTHON = Format(
    "CIFAR-10 python release", ("data_batch_1",),
    "cifar-10-batches-py/ (data_batch_1 .. data_batch_5, test_batch, batches.meta) or cifar-10-python.tar.gz",
    lambda d, name, size: cifar.read_cifar10_python(d),
    dirname="cifar-10-batches-py", archives=("cifar-10-python.tar.gz",),
)  # fmt: skip
CIFAR100_BINARY = Format(
    "CIFAR-100 binary release", ("train.bin",),
    "cifar-100-binary/ (train.bin, test.bin, fine_label_names.txt) or cifar-100-binary.tar.gz",
    lambda d, name, size: cifar.read_cifar100_binary(d),
    dirname="cifar-100-binary", archives=("cifar-100-binary.tar.gz",),
)  # fmt: skip
CIFAR100_PYTHON = Format(
    "CIFAR-100 python release", ("meta",),
    "cifar-100-python/ (train, test, meta) or cifar-100-python.tar.gz",
    lambda d, name, size: cifar.read_cifar100_python(d),
    dirname="cifar-100-python", archives=("cifar-100-python.tar.gz",),
)  # fmt: skip
IDX = Format(
    "IDX files", (mnist.IDX_FILES["train_images"], mnist.IDX_FILES["train_images"] + ".gz"),
    ", ".join(f"{stem}[.gz]" for stem in mnist.IDX_FILES.values()),
    lambda d, name, size: mnist.read_idx_dataset(d, name),
)  # fmt: skip
NPZ = Format(
    "Keras .npz", ("{name}.npz",),
    "{name}.npz (x_train, y_train, x_test, y_test)",
    lambda d, name, size: mnist.read_npz_dataset(d / f"{name}.npz", name),
)  # fmt: skip
IMAGE_FOLDER = Format(
    "image folder", ("train",),
    "train/<class>/*.png|jpg|jpeg|bmp|gif and test/<class>/...",
    lambda d, name, size: image_folder.read_image_folder(d, size),
)  # fmt: skip

FORMATS = {
    "cifar10": (CIFAR10_BINARY, CIFAR10_PYTHON),
    "cifar100": (CIFAR100_BINARY, CIFAR100_PYTHON),
    "fashion_mnist": (IDX, NPZ),
    "mnist": (IDX, NPZ),
    "image_folder": (IMAGE_FOLDER,),
}


class Attempts:
    """Every path looked at, with what was looked for, in order."""

    def __init__(self):
        self._notes = {}

    def add(self, path, note):
        notes = self._notes.setdefault(str(path), [])
        if note not in notes:
            notes.append(note)

    def lines(self):
        return [f"  - {path}: {'; '.join(notes)}" for path, notes in self._notes.items()]


def _read_file(path, name, formats, image_size, attempts):
    if is_archive(path):
        extracted = extract_archive(path)
        found = _read_directory(extracted, name, formats, image_size, attempts, archives=False)
        if found is None:
            attempts.add(path, f"extracted to {extracted}, which holds no {_descriptions(formats)}")
        return found
    if path.suffix == ".npz" and NPZ in formats:
        return mnist.read_npz_dataset(path, name)
    attempts.add(
        path, f"a file that is not a .tar.gz/.tgz/.tar archive{' or .npz' if NPZ in formats else ''}"
    )
    return None


def _descriptions(formats):
    return " or ".join(f.description for f in formats)


def _read_directory(directory, name, formats, image_size, attempts, archives=True):
    for fmt in formats:
        candidates = [directory] + ([directory / fmt.dirname] if fmt.dirname else [])
        for candidate in candidates:
            if candidate.is_dir() and fmt.matches(candidate, name):
                return fmt.read(candidate, name, image_size)
            markers = " or ".join(fmt.marker_names(name))
            attempts.add(
                candidate, f"no {markers} ({fmt.description})" if candidate.is_dir() else "not found"
            )
    if not archives:
        return None
    for fmt in formats:
        for archive in (directory / a for a in fmt.archives):
            if archive.is_file():
                found = _read_file(archive, name, formats, image_size, attempts)
                if found is not None:
                    return found
            else:
                attempts.add(archive, "not found")
    return None


def find_dataset(location, name, image_size, attempts):
    """Read ``name`` from ``location`` in the first format recognised there, else ``None``.

    Raises:
        DataError: when a format is recognised but its files are incomplete,
            truncated, corrupt or unsafe; silently skipping them would hide the
            problem behind a download.
    """
    formats = FORMATS[name]
    if location.is_file():
        return _read_file(location, name, formats, image_size, attempts)
    if not location.exists():
        attempts.add(location, "not found")
        return None
    return _read_directory(location, name, formats, image_size, attempts)


def expected_files(name):
    """What to put under ``data_dir`` for ``name``, one alternative per format."""
    return [fmt.expected.format(name=name) for fmt in FORMATS[name]]
