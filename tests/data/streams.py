"""Tiny ``StreamSplit``s and ``StreamedDataset``s held in memory as encoded PNG or JPEG bytes, for stream tests."""

import numpy as np
import tensorflow as tf

from kvision.data.stream import StreamedDataset, StreamSplit

CORRUPT = b"\xff\xd8\xff\xe0 a JPEG cut short"  # a JPEG header the decoder reads, then nothing decodable


def encode(images, fmt="png"):
    """Each uint8 ``[h, w, c]`` image as PNG or JPEG (quality 95) bytes."""
    if fmt == "png":
        return [tf.io.encode_png(image).numpy() for image in images]
    return [tf.io.encode_jpeg(image, quality=95).numpy() for image in images]


def reader(examples, load=None):
    """A ``StreamSplit.read`` of the ``examples`` dataset: sharded by input pipeline, shuffled, then ``load``-ed."""
    def read(input_context=None, shuffle=False, seed=None):
        dataset = examples
        if input_context is not None:
            dataset = dataset.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
        if shuffle:
            dataset = dataset.shuffle(dataset.cardinality(), seed=seed, reshuffle_each_iteration=True)
        return dataset if load is None else dataset.map(load)

    return read


def memory_split(images, labels, *, fmt="png", name="img", corrupt=()):
    """A ``StreamSplit`` of ``images`` encoded as ``fmt``, with ids ``{name}{i:04d}.{fmt}``; indices in ``corrupt`` hold ``CORRUPT``."""
    encoded = encode(images, fmt)
    for i in corrupt:
        encoded[i] = CORRUPT
    ids = [f"{name}{i:04d}.{fmt}" for i in range(len(encoded))]
    labels = np.asarray(labels, np.int64)

    return StreamSplit(len(encoded), reader(tf.data.Dataset.from_tensor_slices((encoded, labels, ids))))


def memory_dataset(train, test, validation=None, *, num_classes, fmt="png", corrupt=()):
    """A ``StreamedDataset`` of ``(images, labels)`` splits; ``corrupt`` indices of the training split are broken."""
    splits = {"train": memory_split(*train, fmt=fmt, name="train/", corrupt=corrupt),
              "test": memory_split(*test, fmt=fmt, name="test/")}
    if validation is not None:
        splits["validation"] = memory_split(*validation, fmt=fmt, name="validation/")
    return StreamedDataset("memory", [f"c{i}" for i in range(num_classes)], splits, train[0].shape[-1], "memory",
                           image_size=train[0].shape[1:3], fingerprint="memory")


def write_folder(root, images, labels, *, fmt="jpeg"):
    """``root/c{label}/{i:04d}.{fmt}`` for each image; the paths, in order."""
    paths = []
    for i, (encoded, label) in enumerate(zip(encode(images, fmt), labels)):
        path = root / f"c{label}" / f"{i:04d}.{fmt}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encoded)
        paths.append(path)
    return paths


def file_split(paths, labels):
    """A ``StreamSplit`` reading image files (ids: their paths)."""
    files = tf.data.Dataset.from_tensor_slices(([str(p) for p in paths], np.asarray(labels, np.int64)))
    return StreamSplit(len(paths), reader(files, lambda path, label: (tf.io.read_file(path), label, path)))
