"""TFRecord shards: any dataset written as ``tf.train.Example`` shards with a JSON manifest, and streamed back.

The layout is the one TFDS and TF Model Garden readers expect::

    DIR/manifest.json
    DIR/train-00000-of-00004.tfrecord … DIR/test-00000-of-00001.tfrecord

Each example holds ``image/encoded`` (PNG or JPEG bytes), ``image/format``
(``b"png"``/``b"jpeg"``), ``image/class/label``, ``image/height``,
``image/width`` and ``image/id`` (where the example came from: a file path,
``cifar10:train:123``). The manifest records the dataset (name, origin,
class names, channels, image size), every shard's file, example count,
byte size and SHA-256, and the command that wrote it.

Writing (``write_tfrecords``) happens in a hidden sibling directory renamed
into place when complete, so a reader never sees half a dataset. Reading
(``open_tfrecords``) gives a ``StreamedDataset`` whose splits interleave
their shards in ``tf.data``; under a strategy each input pipeline reads whole
shards of its own. A shard that is missing, truncated or corrupt is named:
sizes are checked on opening, SHA-256 with ``verify=True``, and while
reading, every shard must yield the example count its manifest promises.
"""

import hashlib
import json
import os
import shutil
import socket
from pathlib import Path

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from kvision.data.dataset import ImageDataset
from kvision.data.decode import decode_image
from kvision.data.resize import parse_image_size
from kvision.data.stream import SPLITS, StreamedDataset, StreamSplit, resize_to
from kvision.data.text import split_of
from kvision.errors import DataError

MANIFEST = "manifest.json"
FORMAT = "kvision-tfrecord"
VERSION = 1
SHARD_BYTES = 128 * 2**20  # a new shard starts past this size (TFDS aims at 64 MiB–1 GiB shards)
IMAGE_FORMATS = ("png", "jpeg")
JPEG_QUALITY = 95
CYCLE_LENGTH = 16  # shards read at once by one input pipeline
_MAGIC = {"jpeg": b"\xff\xd8\xff", "png": b"\x89PNG\r\n\x1a\n"}
FEATURES = {
    "image/encoded": tf.io.FixedLenFeature([], tf.string),
    "image/format": tf.io.FixedLenFeature([], tf.string),
    "image/class/label": tf.io.FixedLenFeature([], tf.int64),
    "image/height": tf.io.FixedLenFeature([], tf.int64),
    "image/width": tf.io.FixedLenFeature([], tf.int64),
    "image/id": tf.io.FixedLenFeature([], tf.string),
}


def shard_name(split, index, total):
    """``<split>-00000-of-00008.tfrecord``, TFDS's naming."""
    return f"{split}-{index:05d}-of-{total:05d}.tfrecord"


def file_sha256(path):
    """Hex SHA-256 of the file at ``path``, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


class _ShardWriter:
    """One split's examples into shards: ``shards`` of them round-robin, or a new one every ``SHARD_BYTES``.

    Shards are opened on their first example (so a split of 3 examples asked
    for 8 shards writes 3) and named ``-of-N`` on ``close`` once N is known.
    """

    def __init__(self, directory, split, shards):
        self.directory, self.split, self.shards = directory, split, shards
        self.writers, self.counts, self.sizes = [], [], []

    def write(self, record):
        if self.shards:
            index = sum(self.counts) % self.shards
        else:
            index = len(self.writers) - 1 if self.writers and self.sizes[-1] < SHARD_BYTES else len(self.writers)
        if index == len(self.writers):
            self.writers.append(tf.io.TFRecordWriter(str(self._part(index))))
            self.counts.append(0)
            self.sizes.append(0)
        self.writers[index].write(record)
        self.counts[index] += 1
        self.sizes[index] += len(record) + 16  # a record's length, its CRC and the data's CRC

    def _part(self, index):
        return self.directory / f"{self.split}-{index:05d}.part"

    def close(self):
        """The manifest's entries of the shards, renamed to their final names."""
        entries = []
        for index, (writer, count) in enumerate(zip(self.writers, self.counts, strict=True)):
            writer.close()
            path = self.directory / shard_name(self.split, index, len(self.writers))
            self._part(index).rename(path)
            entries.append({"file": path.name, "count": count, "bytes": path.stat().st_size,
                            "sha256": file_sha256(path)})
        return entries


def _example(encoded, fmt, label, height, width, example_id):
    def int64(value):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))

    def data(value):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    # deterministic: the feature map's keys in sorted order, so a rerun writes the same bytes (and SHA-256).
    return tf.train.Example(features=tf.train.Features(feature={
        "image/encoded": data(encoded), "image/format": data(fmt), "image/class/label": int64(label),
        "image/height": int64(height), "image/width": int64(width), "image/id": data(example_id),
    })).SerializeToString(deterministic=True)  # fmt: skip


def _starts_with(encoded, magic):
    return tf.equal(tf.strings.substr(encoded, 0, len(magic)), magic)


def _encoder(size, image_format):
    """``(image, original bytes, label, id)`` → what one example stores, as a ``tf.data`` map function.

    The original JPEG or PNG bytes are kept when no resize is asked and
    ``image_format`` is None or theirs; anything else (arrays, GIF/BMP, a
    resize) is encoded as ``image_format`` (PNG, lossless, by default).
    """
    target = image_format or "png"

    def encode(image, original, label, example_id):
        if size is not None:
            image = resize_to(image, size)

        def encoded():
            data = tf.io.encode_png(image) if target == "png" else tf.io.encode_jpeg(image, quality=JPEG_QUALITY)
            return data, tf.constant(target)

        kept = [
            (_starts_with(original, _MAGIC[fmt]), lambda fmt=fmt: (original, tf.constant(fmt)))
            for fmt in IMAGE_FORMATS
            if size is None and image_format in (None, fmt)
        ]
        data, fmt = tf.case(kept, default=encoded, exclusive=True) if kept else encoded()
        shape = tf.shape(image, out_type=tf.int64)
        return data, fmt, label, shape[0], shape[1], example_id

    return encode


def _arrays_source(dataset, split):
    """An ``ImageDataset`` split as ``(image, b"", label, id)`` in a seeded random order (shards mix classes)."""
    images, labels = getattr(dataset, split)
    order = np.random.default_rng(0).permutation(len(labels))

    def examples():
        for i in order:
            yield images[i], b"", labels[i], f"{dataset.name}:{split}:{i}"

    signature = (tf.TensorSpec(images.shape[1:], tf.uint8), tf.TensorSpec((), tf.string),
                 tf.TensorSpec((), tf.int64), tf.TensorSpec((), tf.string))
    return tf.data.Dataset.from_generator(examples, output_signature=signature)


def _stream_source(dataset, split):
    """A ``StreamedDataset`` split as ``(decoded image, encoded bytes, label, id)``, files in a seeded order.

    Every image is decoded, even one whose bytes are kept: that checks it
    before it is written and gives its height and width.
    """
    def decode(encoded, label, example_id):
        return decode_image(encoded, dataset.channels), encoded, label, example_id

    stream = dataset.splits[split].read(shuffle=True, seed=0)
    return stream.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def describe(dataset, *, image_size=None, image_format=None, validation=0.0):
    """What identifies a conversion: the source dataset and the options. A rerun with the same one does nothing."""
    if isinstance(dataset, ImageDataset):
        counts = {"train": len(dataset.train[1]), "test": len(dataset.test[1])}
        channels, native = dataset.image_shape[-1], list(dataset.image_shape[:2])
    else:
        counts, channels = dataset.counts(), dataset.channels
        native = None if dataset.image_size is None else list(dataset.image_size)
    return {
        "name": dataset.name, "origin": dataset.origin, "class_names": list(dataset.class_names),
        "channels": channels, "counts": counts, "image_size": native if image_size is None else list(image_size),
        "image_format": image_format, "validation": validation,
    }  # fmt: skip


def _check_options(dataset, shards, image_format, validation):
    if shards is not None and (isinstance(shards, bool) or not isinstance(shards, int) or shards < 1):
        raise DataError(f"Expected shards to be a positive int or None. Received: shards={shards!r}")
    if image_format not in (None, *IMAGE_FORMATS):
        raise DataError(f"Expected image_format None, 'png' or 'jpeg'. Received: image_format={image_format!r}")
    if not (isinstance(validation, (int, float)) and 0 <= validation < 1):
        raise DataError(f"Expected validation to be a fraction in [0, 1). Received: validation={validation!r}")
    has_validation = isinstance(dataset, StreamedDataset) and "validation" in dataset.splits
    if validation and has_validation:
        raise DataError(f"{dataset.origin} already has a validation split: expected validation=0. "
                        f"Received: validation={validation!r}")


def _existing(output, identity):
    """True when ``output`` already holds this conversion; ``DataError`` when it holds anything else."""
    manifest = output / MANIFEST
    if output.is_dir() and not any(output.iterdir()):
        output.rmdir()
        return False
    if not output.exists():
        return False
    try:
        found = json.loads(manifest.read_text())["source"]
    except (OSError, ValueError, KeyError, TypeError):
        raise DataError(f"{output}: expected a new directory or one written by write_tfrecords. "
                        f"Received: a non-empty directory without a readable {MANIFEST}") from None
    different = sorted(key for key in identity if found.get(key) != identity[key])
    if different:
        shown = ", ".join(f"{key}={found.get(key)!r} (now {identity[key]!r})" for key in different)
        raise DataError(f"{output} holds a different dataset; choose another --output or remove it. "
                        f"Received: {shown}")
    return True


def write_tfrecords(dataset, output, *, shards=None, image_size=None, image_format=None, validation=0.0,
                    command=None):
    """Write ``dataset``'s splits as TFRecord shards and a manifest in ``output``, atomically.

    Everything goes to a hidden sibling directory that is renamed to
    ``output`` when complete; a failure leaves no ``output``. If ``output``
    already holds this dataset converted with these options, nothing is
    written; if it holds anything else, ``DataError``.

    Args:
        dataset: an ``ImageDataset`` (images encoded here) or a
            ``StreamedDataset`` (its JPEG/PNG bytes kept as they are unless a
            resize or another format is asked; others decoded and encoded).
        output: the directory to create.
        shards: shards per split (fewer when a split has fewer examples;
            examples dealt round-robin); None starts a new shard every
            ``SHARD_BYTES`` (128 MiB).
        image_size: ``(height, width)`` or an int to resize every image to.
        image_format: ``"png"`` (lossless) or ``"jpeg"`` (quality 95) for the
            images that are encoded; None keeps JPEG/PNG bytes and encodes
            the rest as PNG.
        validation: fraction of train moved to a ``validation`` split, chosen
            by a hash of each example's id (``split_of``): the same examples
            on every run and machine.
        command: the command line that asked for it, recorded in the manifest.

    Returns:
        The manifest written (or found), as a dict.
    """
    _check_options(dataset, shards, image_format, validation)
    size = None if image_size is None else parse_image_size(image_size)
    output = Path(output).expanduser().absolute()
    identity = describe(dataset, image_size=size, image_format=image_format, validation=validation)
    if _existing(output, identity):
        print(f"{output} already holds {dataset.name} converted with these options; nothing to do.")
        return json.loads((output / MANIFEST).read_text())
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = output.parent / f".{output.name}.tmp-{socket.gethostname()}-{os.getpid()}"
    staging.mkdir()
    try:
        splits = _write_splits(dataset, staging, shards, size, image_format, validation, identity["counts"])
        manifest = {
            "format": FORMAT, "version": VERSION, "name": dataset.name, "origin": dataset.origin,
            "class_names": identity["class_names"], "channels": identity["channels"],
            "image_size": identity["image_size"], "splits": splits, "source": identity, "command": command,
        }  # fmt: skip
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        staging.rename(output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def _write_splits(dataset, directory, shards, size, image_format, validation, counts):
    """Every split's shards in ``directory``: ``{split: [shard entries]}``."""
    source = _arrays_source if isinstance(dataset, ImageDataset) else _stream_source
    writers = {split: _ShardWriter(directory, split, shards) for split in SPLITS}
    for split, count in counts.items():
        examples = source(dataset, split).map(_encoder(size, image_format), num_parallel_calls=tf.data.AUTOTUNE,
                                              deterministic=True)
        for encoded, fmt, label, height, width, example_id in tqdm(
            examples.prefetch(tf.data.AUTOTUNE).as_numpy_iterator(), total=count, desc=f"Writing {split} shards",
            disable=None,
        ):
            carved = split == "train" and validation
            target = split_of(example_id.decode(), validation=validation, test=0) if carved else split
            writers[target].write(_example(encoded, fmt, label, height, width, example_id))
    entries = {split: writer.close() for split, writer in writers.items()}
    return {split: shard_list for split, shard_list in entries.items() if shard_list}


def _load_manifest(directory):
    """The manifest of ``directory``, checked for the fields the reader uses; ``DataError`` naming what is wrong."""
    path = directory / MANIFEST
    if not path.is_file():
        found = f"no {MANIFEST}" if directory.is_dir() else "no such directory"
        raise DataError(f"{directory}: expected TFRecord shards and a {MANIFEST} written by "
                        f"python -m kvision.data.convert. Received: {found}")
    try:
        manifest = json.loads(path.read_text())
        shards = [(split, entry["file"], int(entry["count"]), int(entry["bytes"]), str(entry["sha256"]))
                  for split, entries in manifest["splits"].items() for entry in entries]
        ok = manifest["format"] == FORMAT and manifest["version"] == VERSION and manifest["class_names"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise DataError(f"{path}: expected a {FORMAT} manifest (version {VERSION}). "
                        f"Received: {type(err).__name__}: {err}") from None
    if not ok:
        raise DataError(f"{path}: expected a {FORMAT} manifest (version {VERSION}) with class names. Received: "
                        f"format={manifest['format']!r}, version={manifest['version']!r}, "
                        f"{len(manifest['class_names'])} class names")
    for split, file, *_ in shards:
        if Path(file).name != file or split not in SPLITS:
            raise DataError(f"{path}: expected shard files named <split>-NNNNN-of-NNNNN.tfrecord in splits "
                            f"{', '.join(SPLITS)}. Received: {split}/{file!r}")
    return manifest, shards


def _check_shards(directory, shards, verify):
    """Every shard exists with its manifest size (cheap: a stat); with ``verify`` also its SHA-256."""
    for _, file, _, size, _ in shards:
        path = directory / file
        if not path.is_file():
            raise DataError(f"{path}: expected a TFRecord shard listed in {MANIFEST}. Received: no such file")
        found = path.stat().st_size
        if found != size:
            raise DataError(f"{path}: expected {size} bytes as in {MANIFEST}; the shard is truncated or was "
                            f"changed. Received: {found} bytes")
    if verify:
        for _, file, _, _, sha256 in tqdm(shards, desc="Verifying shards", disable=None):
            found = file_sha256(directory / file)
            if found != sha256:
                raise DataError(f"{directory / file}: expected SHA-256 {sha256} as in {MANIFEST}; the shard is "
                                f"corrupt or was changed. Received: {found}")


def _shard_records(path, count):
    """``(record, path)`` of one shard; an error naming ``path`` at its end unless it gave all ``count`` records.

    ``TFRecordDataset``'s own errors ("corrupted record at 480") do not say
    which file; here a bad record ends the shard quietly (``ignore_errors``)
    and the count check that follows the last record names it.
    """
    records = tf.data.TFRecordDataset(path).ignore_errors().map(lambda record: (record, False))
    marked = records.concatenate(tf.data.Dataset.from_tensors((tf.constant(b""), True)))

    def step(read, element):
        record, end = element
        complete = tf.logical_or(tf.logical_not(end), tf.equal(read, count))
        message = tf.strings.join([path, ": expected ", tf.strings.as_string(count), " records as in manifest.json; "
                                   "the shard is truncated or corrupt. Received: ", tf.strings.as_string(read),
                                   " readable records"])
        with tf.control_dependencies([tf.debugging.Assert(complete, [message])]):
            return read + 1, (tf.identity(record), end)

    checked = marked.scan(tf.constant(0, tf.int64), step)
    return checked.filter(lambda record, end: tf.logical_not(end)).map(lambda record, end: (record, path))


def _parser(num_classes):
    """``(record, shard path)`` → ``(encoded, label, id)``; a label outside the classes fails naming the shard."""
    def parse(record, path):
        example = tf.io.parse_single_example(record, FEATURES)
        label, example_id = example["image/class/label"], example["image/id"]
        in_range = tf.logical_and(label >= 0, label < num_classes)
        message = tf.strings.join([path, f": expected labels in [0, {num_classes - 1}] ({num_classes} classes). "
                                   "Received: label ", tf.strings.as_string(label), " (example ", example_id, ")"])
        with tf.control_dependencies([tf.debugging.Assert(in_range, [message])]):
            return tf.identity(example["image/encoded"]), label, example_id

    return parse


def _split_reader(files, counts, num_classes):
    """The ``read`` of a ``StreamSplit`` over shard ``files`` holding ``counts`` examples."""
    def read(input_context=None, shuffle=False, seed=None):
        shards = tf.data.Dataset.from_tensor_slices((tf.constant(files, tf.string), tf.constant(counts, tf.int64)))
        pipelines = input_context.num_input_pipelines if input_context else 1
        # Each input pipeline reads whole shards of its own; with fewer shards than pipelines, every pipeline
        # reads every shard in one fixed order and keeps its share of the examples.
        by_file = pipelines <= len(files)
        if input_context and by_file:
            shards = shards.shard(pipelines, input_context.input_pipeline_id)
        if shuffle and by_file:
            shards = shards.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
        deterministic = not shuffle or seed is not None or not by_file
        records = shards.interleave(_shard_records, cycle_length=min(CYCLE_LENGTH, len(files)),
                                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
        if input_context and not by_file:
            records = records.shard(pipelines, input_context.input_pipeline_id)
        examples = records.map(_parser(num_classes), num_parallel_calls=tf.data.AUTOTUNE,
                               deterministic=deterministic)
        options = tf.data.Options()
        # Unsharded, tf.distribute's auto-sharding splits the shard files between workers (FILE); read with an
        # input_context, the split is done and must not happen again (OFF).
        policy = tf.data.experimental.AutoShardPolicy
        options.experimental_distribute.auto_shard_policy = policy.OFF if input_context else policy.FILE
        return examples.with_options(options)

    return read


def open_tfrecords(directory, *, verify=False):
    """The TFRecord shards in ``directory`` (with their ``manifest.json``) as a ``StreamedDataset``.

    Opening checks the manifest and that every shard exists with its
    recorded size; ``verify`` also checks every shard's SHA-256 (reads them
    all). While reading, a shard that gives fewer records than its manifest
    count (truncated, or a record failing its CRC) fails with an
    ``InvalidArgumentError`` naming it, as does a label outside the classes.

    Args:
        directory: a directory written by ``write_tfrecords`` (or
            ``python -m kvision.data.convert``).
        verify: check each shard's SHA-256 against the manifest first.

    Raises:
        DataError: no or an invalid manifest, a missing shard, a shard of the
            wrong size or (with ``verify``) the wrong SHA-256; the message
            names the file.
    """
    directory = Path(directory).expanduser().absolute()
    manifest, shards = _load_manifest(directory)
    _check_shards(directory, shards, verify)
    num_classes = len(manifest["class_names"])
    splits = {}
    for split in manifest["splits"]:
        mine = [(str(directory / file), count) for name, file, count, _, _ in shards if name == split]
        files, counts = zip(*mine, strict=True) if mine else ((), ())
        splits[split] = StreamSplit(sum(counts), _split_reader(list(files), list(counts), num_classes))
    digest = hashlib.sha256("\n".join(sha256 for *_, sha256 in shards).encode())
    size = manifest.get("image_size")
    return StreamedDataset(
        name=manifest["name"], class_names=list(manifest["class_names"]), splits=splits,
        channels=manifest["channels"], origin=str(directory), image_size=None if size is None else tuple(size),
        fingerprint="sha256:" + digest.hexdigest(),
    )  # fmt: skip
