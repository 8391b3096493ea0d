"""Write tiny datasets in the real on-disk formats, and return what they hold."""

import gzip
import io
import pickle
import struct
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR100_FINE_NAMES = [f"fine_{i}" for i in range(100)]
CIFAR100_COARSE_NAMES = [f"coarse_{i}" for i in range(20)]


@dataclass
class Written:
    """Where a tiny dataset was written and the arrays a reader must return."""

    path: Path
    train: tuple
    test: tuple
    class_names: list


def random_images(count, height=32, width=32, channels=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, height, width, channels), dtype=np.uint8)


def random_examples(count, size, channels, num_classes, seed):
    """``count`` random uint8 images of ``size``×``size``×``channels`` and labels."""
    return random_images(count, size, size, channels, seed=seed), random_labels(count, num_classes, seed=seed)


def random_labels(count, num_classes, seed=0):
    return np.random.default_rng(seed + 1000).integers(0, num_classes, count).astype(np.int64)


class Py2Pickler(pickle._Pickler):
    """Writes ``bytes`` and ``str`` as Python 2 strings (``BINSTRING``), like the real CIFAR pickles.

    Python 3's own protocol-2 pickles encode bytes through ``_codecs.encode``,
    which the real files (written by Python 2's cPickle) never reference.
    """

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_string(self, obj):
        data = obj.encode("latin-1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[bytes] = save_py2_string
    dispatch[str] = save_py2_string


def write_py2_pickle(path, obj):
    with open(path, "wb") as f:
        Py2Pickler(f, protocol=2).dump(obj)


def cifar_rows(images):
    """NHWC uint8 -> (N, 3072) rows of planar R, G, B bytes."""
    return images.transpose(0, 3, 1, 2).reshape(len(images), -1)


def write_cifar10_binary(root, per_batch=3, test_count=4, examples=random_examples):
    """The CIFAR-10 binary release; ``examples(count, size, channels, num_classes, seed)`` makes the data."""
    directory = Path(root) / "cifar-10-batches-bin"
    directory.mkdir(parents=True)
    parts = []
    for i, stem in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        count = test_count if stem == "test_batch" else per_batch
        images, labels = examples(count, 32, 3, 10, i)
        records = np.concatenate([labels[:, None].astype(np.uint8), cifar_rows(images)], axis=1)
        (directory / f"{stem}.bin").write_bytes(records.tobytes())
        parts.append((images, labels))
    (directory / "batches.meta.txt").write_text("\n".join(CIFAR10_NAMES) + "\n\n")
    train = (np.concatenate([p[0] for p in parts[:5]]), np.concatenate([p[1] for p in parts[:5]]))
    return Written(directory, train, parts[5], CIFAR10_NAMES)


def write_cifar100_binary(root, train_count=5, test_count=3):
    directory = Path(root) / "cifar-100-binary"
    directory.mkdir(parents=True)
    splits = {}
    for i, (stem, count) in enumerate((("train", train_count), ("test", test_count))):
        images, fine = random_images(count, seed=10 + i), random_labels(count, 100, seed=10 + i)
        coarse = fine // 5
        records = np.concatenate([coarse[:, None], fine[:, None], cifar_rows(images)], axis=1).astype(
            np.uint8
        )
        (directory / f"{stem}.bin").write_bytes(records.tobytes())
        splits[stem] = (images, fine)
    (directory / "fine_label_names.txt").write_text("\n".join(CIFAR100_FINE_NAMES) + "\n")
    (directory / "coarse_label_names.txt").write_text("\n".join(CIFAR100_COARSE_NAMES) + "\n")
    return Written(directory, splits["train"], splits["test"], CIFAR100_FINE_NAMES)


def write_cifar10_python(root, per_batch=3, test_count=4):
    directory = Path(root) / "cifar-10-batches-py"
    directory.mkdir(parents=True)
    parts = []
    for i, stem in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        count = test_count if stem == "test_batch" else per_batch
        images, labels = random_images(count, seed=20 + i), random_labels(count, 10, seed=20 + i)
        batch = {
            b"batch_label": f"{stem} of tiny".encode(),
            b"labels": [int(v) for v in labels],
            b"data": cifar_rows(images),
            b"filenames": [f"img_{j}.png".encode() for j in range(count)],
        }
        write_py2_pickle(directory / stem, batch)
        parts.append((images, labels))
    meta = {
        b"num_cases_per_batch": per_batch,
        b"label_names": [n.encode() for n in CIFAR10_NAMES],
        b"num_vis": 3072,
    }
    write_py2_pickle(directory / "batches.meta", meta)
    train = (np.concatenate([p[0] for p in parts[:5]]), np.concatenate([p[1] for p in parts[:5]]))
    return Written(directory, train, parts[5], CIFAR10_NAMES)


def write_cifar100_python(root, train_count=5, test_count=3):
    directory = Path(root) / "cifar-100-python"
    directory.mkdir(parents=True)
    splits = {}
    for i, (stem, count) in enumerate((("train", train_count), ("test", test_count))):
        images, fine = random_images(count, seed=30 + i), random_labels(count, 100, seed=30 + i)
        batch = {
            b"filenames": [f"img_{j}.png".encode() for j in range(count)],
            b"batch_label": f"{stem} batch".encode(),
            b"fine_labels": [int(v) for v in fine],
            b"coarse_labels": [int(v) // 5 for v in fine],
            b"data": cifar_rows(images),
        }
        write_py2_pickle(directory / stem, batch)
        splits[stem] = (images, fine)
    meta = {
        b"fine_label_names": [n.encode() for n in CIFAR100_FINE_NAMES],
        b"coarse_label_names": [n.encode() for n in CIFAR100_COARSE_NAMES],
    }
    write_py2_pickle(directory / "meta", meta)
    return Written(directory, splits["train"], splits["test"], CIFAR100_FINE_NAMES)


def make_tar_gz(directory, archive):
    """Pack ``directory`` as ``archive`` with the folder name as the top-level entry, like the releases."""
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(directory, arcname=Path(directory).name)
    return Path(archive)


def tar_with_member(archive, name, data=b"evil", link_target=None):
    """A .tar.gz whose single member is ``name`` (a file, or a symlink to ``link_target``)."""
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo(name)
        if link_target is None:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        else:
            info.type, info.linkname = tarfile.SYMTYPE, link_target
            tar.addfile(info)
    return Path(archive)


def idx_bytes(array):
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx_dataset(directory, gz=True, train_count=6, test_count=4, size=28, examples=random_examples):
    """The four MNIST-style IDX files; ``examples`` as for ``write_cifar10_binary``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    train = examples(train_count, size, 1, 10, 40)
    test = examples(test_count, size, 1, 10, 41)
    contents = {
        "train-images-idx3-ubyte": train[0][..., 0],
        "train-labels-idx1-ubyte": train[1],
        "t10k-images-idx3-ubyte": test[0][..., 0],
        "t10k-labels-idx1-ubyte": test[1],
    }
    for stem, array in contents.items():
        data = idx_bytes(array)
        if gz:
            (directory / f"{stem}.gz").write_bytes(gzip.compress(data))
        else:
            (directory / stem).write_bytes(data)
    return Written(directory, train, test, None)


def write_image(path, image, fmt="png"):
    """Encode ``image`` (H, W, C uint8) with TensorFlow and return the exact bytes written."""
    encoded = tf.io.encode_png(image) if fmt == "png" else tf.io.encode_jpeg(image, quality=95)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encoded.numpy())
    return path
