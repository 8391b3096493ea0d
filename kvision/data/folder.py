"""Image folders streamed from disk: ``class/…`` trees, listed in Python, read and decoded inside ``tf.data``.

Two layouts are recognised. Class folders at the root (``cat/1.jpg``,
``dog/x/2.png``) are split by a SHA-256 hash of each file's path relative
to the root (``kvision.data.split.split_of``), so a file stays in its split
however many files are added or removed. A root holding only ``train/``,
``validation/`` and ``test/`` is already split; a missing validation or
test part is carved from ``train/`` by the same hash.

Files are kept by extension (.jpg .jpeg .png .bmp .gif, any case); hidden
files and folders are skipped, other files are counted in one log line. A
file over the decoder's byte budget is refused while listing, by name.
"""

import hashlib
import logging
import os
import struct
from pathlib import Path

import tensorflow as tf

from kvision.data.decode import MAX_IMAGE_BYTES
from kvision.data.files import check_file_size
from kvision.data.image_folder import IMAGE_EXTENSIONS
from kvision.data.split import split_of
from kvision.data.stream import SPLITS, StreamedDataset, StreamSplit
from kvision.errors import DataError

HEADER_SAMPLE = 256  # files whose headers decide channels and size
_HEADER_BYTES = 2**16  # enough for a JPEG's SOF after a typical EXIF block
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_log = logging.getLogger(__name__)


def _visible(directory):
    """The non-hidden entries of ``directory``, sorted by name."""
    return sorted((e for e in os.scandir(directory) if not e.name.startswith(".")), key=lambda e: e.name)


def _class_dirs(directory):
    return [e.name for e in _visible(directory) if e.is_dir()]


def _walk(directory, counts):
    """Image files under ``directory`` (depth first, sorted) as ``(path, size)``; others counted in ``counts``."""
    files = []
    for entry in _visible(directory):
        if entry.is_dir(follow_symlinks=False):
            files += _walk(entry.path, counts)
        elif entry.is_file():
            if os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS:
                # Checked now, with the listing's stat: tf.io.read_file would read a huge file (or a link to one)
                # whole before the decoder's byte budget could refuse it.
                files.append((entry.path, check_file_size(entry.path, MAX_IMAGE_BYTES, "an image file")))
            else:
                counts["other"] += 1
    return files


def _list_classes(split_dir, class_names, counts):
    """``[(path, size, label)]`` under ``split_dir/<class>/``; a class folder without images is an error."""
    items = []
    for label, name in enumerate(class_names):
        if not (split_dir / name).is_dir():
            continue
        before = counts["other"]
        files = _walk(split_dir / name, counts)
        if not files:
            found = counts["other"] - before
            raise DataError(
                f"{split_dir / name}: expected images ({' '.join(IMAGE_EXTENSIONS)}) in every class folder. "
                f"Received: {'an empty folder' if not found else f'no images, {found} non-image files'}"
            )
        items += [(path, size, label) for path, size in files]
    return items


def _header_info(path):
    """``(channels, (height, width))`` from an image file's header; ``(3, None)`` when it cannot be read."""
    with open(path, "rb") as f:
        head = f.read(_HEADER_BYTES)
    if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) >= 26:
        width, height = struct.unpack(">II", head[16:24])
        return (1 if head[25] in (0, 4) else 3), (height, width)  # colour type 0 grey, 4 grey + alpha
    if head[:2] == b"BM" and len(head) >= 30:
        width, height = struct.unpack("<ii", head[18:26])
        return (1 if struct.unpack("<H", head[28:30])[0] <= 8 else 3), (abs(height), width)
    if head[:4] == b"GIF8" and len(head) >= 10:
        width, height = struct.unpack("<HH", head[6:10])
        return 3, (height, width)
    if head[:2] == b"\xff\xd8":
        position = 2
        while position + 9 < len(head) and head[position] == 0xFF:
            marker, length = head[position + 1], struct.unpack(">H", head[position + 2 : position + 4])[0]
            if marker in _JPEG_SOF:
                height, width = struct.unpack(">HH", head[position + 5 : position + 9])
                return (1 if head[position + 9] == 1 else 3), (height, width)
            position += 2 + length
    return 3, None


def _sample_shape(paths, sample):
    """``(channels, image_size)`` read from the headers of at most ``sample`` files spread over ``paths``.

    channels is 1 when every sampled image is grey (PNG colour type 0/4,
    one-component JPEG, BMP of ≤ 8 bits), else 3; a GIF or an unreadable
    header counts as colour. image_size is the one size every sampled image
    has, else None.
    """
    step = max(1, len(paths) // sample)
    infos = [_header_info(path) for path in paths[::step][:sample]]
    channels = 1 if all(c == 1 for c, _ in infos) else 3
    sizes = {size for _, size in infos}
    return channels, (sizes.pop() if len(sizes) == 1 and None not in sizes else None)


def _file_split(items):
    """A ``StreamSplit`` reading ``items`` (``[(path, size, label)]``) as ``(bytes, label, path)``."""
    paths = [path for path, _, _ in items]
    labels = [label for _, _, label in items]

    def read(input_context=None, shuffle=False, seed=None):
        files = tf.data.Dataset.from_tensor_slices((tf.constant(paths), tf.constant(labels, tf.int64)))
        if input_context is not None:  # shard the file list: each pipeline reads only its own files
            files = files.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
        if shuffle:
            files = files.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
        return files.map(lambda path, label: (tf.io.read_file(path), label, path), num_parallel_calls=tf.data.AUTOTUNE)

    return StreamSplit(len(items), read)


def open_folder(directory, *, validation=0.05, test=0.1, seed=0, sample=HEADER_SAMPLE):
    """A ``StreamedDataset`` of the images under ``directory``, listed now and read lazily by ``tf.data``.

    Args:
        directory: a folder of class folders, or of ``train/`` (and maybe
            ``validation/``, ``test/``) each holding class folders.
        validation: share of the files carved into validation when no
            ``validation/`` folder exists (0: no validation split).
        test: share carved into test when no ``test/`` folder exists.
        seed: salt of the hash that assigns carved files to splits.
        sample: how many file headers decide ``channels`` and ``image_size``.

    Raises:
        DataError: the folder is missing, has no class folders, a class
            folder has no images, or ``validation/``/``test/`` hold classes
            ``train/`` does not.
    """
    root = Path(directory).expanduser()
    if not root.is_dir():
        raise DataError(f"Expected an image folder with class folders. Received: {root} is not a directory")
    top = _class_dirs(root)
    presplit = "train" in top and set(top) <= set(SPLITS)
    base = root / "train" if presplit else root
    class_names = _class_dirs(base)
    if not class_names:
        raise DataError(
            f"{base}: expected class folders (<class>/<image>), or train/ [validation/] [test/] holding them. "
            f"Received: no folders"
        )
    counts = {"other": 0}
    items = {split: [] for split in SPLITS}
    if presplit:
        for split in top:
            unknown = sorted(set(_class_dirs(root / split)) - set(class_names))
            if unknown:
                raise DataError(
                    f"{root / split}: expected only class folders that also exist under train/ "
                    f"({', '.join(class_names)}). Received: {', '.join(unknown)}"
                )
            items[split] = _list_classes(root / split, class_names, counts)
    else:
        items["train"] = _list_classes(root, class_names, counts)
    carve = {"validation": 0 if items["validation"] else validation, "test": 0 if items["test"] else test}
    carved = {split: [] for split in SPLITS}
    for item in items["train"]:
        carved[split_of(os.path.relpath(item[0], root), seed=seed, **carve)].append(item)
    items = {"train": carved["train"], **{split: items[split] + carved[split] for split in carve}}
    if counts["other"]:
        _log.warning("%s: ignored %d non-image files (kept: %s)", root, counts["other"], " ".join(IMAGE_EXTENSIONS))
    every = sorted((os.path.relpath(path, root), size) for split in SPLITS for path, size, _ in items[split])
    fingerprint = hashlib.sha256("\n".join(f"{path}\t{size}" for path, size in every).encode()).hexdigest()
    channels, image_size = _sample_shape([path for split in SPLITS for path, _, _ in items[split]], sample)
    return StreamedDataset(
        "folder",
        class_names,
        {split: _file_split(items[split]) for split in SPLITS if items[split] or split != "validation"},
        channels,
        origin=str(root),
        image_size=image_size,
        fingerprint=fingerprint,
    )
