"""Any TensorFlow Datasets image-classification dataset, streamed as encoded images by ``tf.data``.

``tfds:NAME`` (``tf_flowers``, ``imagenette/320px-v2``, ``imagenet2012``)
reads TFDS's prepared TFRecord files with ``builder.as_dataset``: images
stay encoded (``SkipDecoding``) until kvision's bounded decoder sees them,
files are interleaved, and under a strategy each input pipeline reads its
own files (``ReadConfig.input_context``). Splits: TFDS's ``test`` is the
test split, else its ``validation``; validation is TFDS's ``validation``
when it also has a ``test``, else carved from the end of ``train`` by split
slicing (``train[:n]`` / ``train[n:]``; TFDS shuffles examples when it
prepares a dataset, so the tail is a random sample). A dataset with only
``train`` (``tf_flowers``) has test carved from it too.
"""

import difflib
import hashlib
from pathlib import Path

import tensorflow as tf

from kvision.data.load import first_line
from kvision.data.stream import StreamedDataset, StreamSplit
from kvision.errors import DataError


def _check_name(tfds, name):
    """Refuse a name TFDS does not know, with the closest ones it does."""
    known = tfds.list_builders(with_community_datasets=False)
    base = name.split("/")[0].split(":")[0]  # imagenette/320px-v2, mnist:3.0.1
    if base not in known:
        close = difflib.get_close_matches(base, known, n=5)
        raise DataError(
            "Unknown TFDS dataset: expected a name from tfds.list_builders()"
            + (f", e.g. {', '.join(close)}" if close else "")
            + f". Received: name={name!r}"
        )


def _unavailable(name, builder, data_dir, download, reason):
    status = f"failed: {reason}" if download else "not prepared there, and download=False"
    return DataError(
        f"Could not find the tfds:{name} dataset. Tried:\n  - TFDS {name!r} in {builder.data_dir}: {status}\n"
        "To get it, one of:\n"
        "  - let TensorFlow Datasets download and prepare it (needs internet): download=True\n"
        f"  - prepare it on a machine with internet (tfds build {name} --data_dir DIR) and pass data_dir "
        "(--data-dir) pointing at DIR\n"
        "  - for a dataset downloaded by hand (imagenet2012), put its archives in data_dir or "
        "data_dir/downloads/manual\n"
        f"Received: name={name!r}, data_dir={None if data_dir is None else str(data_dir)!r}, download={download}"
    )


def _image_label_keys(tfds, name, info):
    """The ``(image, label)`` feature keys: the supervised keys, else the only Image and ClassLabel features."""
    features = info.features
    images = [key for key, feature in features.items() if isinstance(feature, tfds.features.Image)]
    labels = [key for key, feature in features.items() if isinstance(feature, tfds.features.ClassLabel)]
    keys = tuple(info.supervised_keys or ())
    if len(keys) == 2 and keys[0] in images and keys[1] in labels:
        return keys
    if len(images) == 1 and len(labels) == 1:
        return images[0], labels[0]
    found = ", ".join(f"{key}: {type(feature).__name__}" for key, feature in features.items())
    raise DataError(
        f"tfds:{name}: expected an image/label pair (one Image and one ClassLabel feature, or supervised_keys "
        f"naming them). Received: features {{{found}}}"
    )


def _count(builder, split):
    """Examples in TFDS split ``split``: from ``DatasetInfo``, else (no split statistics) the dataset's cardinality."""
    if split in builder.info.splits:
        return builder.info.splits[split].num_examples
    return int(builder.as_dataset(split=split).cardinality())


def _split_specs(builder, validation, test):
    """``{kvision split: (TFDS split spec, examples)}``, carving what TFDS lacks from the end of ``train``."""
    available = set(builder.info.splits)
    specs = {}
    if "test" in available or "validation" in available:
        given = "test" if "test" in available else "validation"
        specs["test"] = (given, _count(builder, given))
        test = 0
    if "validation" in available and "test" in available:
        specs["validation"] = ("validation", _count(builder, "validation"))
        validation = 0
    total = _count(builder, "train")
    test_count = max(1, round(total * test)) if test else 0
    validation_count = round(total * validation)
    end = total - test_count - validation_count
    if end < 1:
        raise DataError(
            f"Expected validation and test shares leaving training examples. "
            f"Received: validation={validation!r}, test={test!r} of {total} examples"
        )
    specs["train"] = (f"train[:{end}]" if end < total else "train", end)
    if validation_count:
        specs["validation"] = (f"train[{end}:{end + validation_count}]", validation_count)
    if test_count:
        specs["test"] = (f"train[{total - test_count}:]", test_count)
    return specs


def _tfds_split(tfds, builder, spec, count, image_key, label_key):
    """A ``StreamSplit`` reading TFDS split ``spec`` as ``(encoded image, label, tfds_id)``."""

    def read(input_context=None, shuffle=False, seed=None):
        pipelines = 1 if input_context is None else input_context.num_input_pipelines
        # TFDS shards by file and refuses fewer files than pipelines; then every pipeline reads all and keeps its part.
        by_file = pipelines == 1 or len(builder.info.splits[spec].file_instructions) >= pipelines
        dataset = builder.as_dataset(
            split=spec,
            shuffle_files=shuffle,
            decoders={image_key: tfds.decode.SkipDecoding()},
            read_config=tfds.ReadConfig(
                input_context=input_context if by_file else None,
                shuffle_seed=seed,
                shuffle_reshuffle_each_iteration=True,
                add_tfds_id=True,
            ),
        )
        if not by_file:
            dataset = dataset.shard(pipelines, input_context.input_pipeline_id)
        return dataset.map(
            lambda example: (example[image_key], tf.cast(example[label_key], tf.int64), example["tfds_id"]),
            num_parallel_calls=tf.data.AUTOTUNE,
        )

    return StreamSplit(count, read)


def open_tfds(name, data_dir=None, *, download=True, validation=0.05, test=0.1):
    """A ``StreamedDataset`` of TFDS dataset ``name``, prepared (downloaded) first when needed and allowed.

    Args:
        name: a TFDS name, with config and version when wanted
            (``imagenette/320px-v2``, ``mnist:3.0.1``).
        data_dir: TFDS's ``data_dir``; also where manually downloaded archives
            (imagenet2012) are looked for, directly or in ``downloads/manual``.
        download: whether TFDS may download and prepare the dataset.
        validation: share of ``train`` carved into validation when TFDS has
            no validation split besides its test split (0: none).
        test: share of ``train`` carved into test when TFDS has neither a
            test nor a validation split.

    Raises:
        DataError: the name is unknown (with close matches), the dataset is
            not prepared and cannot be downloaded (the "tried … how to get
            it" message), or it has no image/label pair.
    """
    import tensorflow_datasets as tfds  # slow to import; only needed on this path

    _check_name(tfds, name)
    builder = tfds.builder(name, data_dir=None if data_dir is None else str(data_dir))
    if download:
        manual_dir = None  # TFDS's default: data_dir/downloads/manual
        if data_dir is not None and not (Path(data_dir) / "downloads" / "manual").is_dir():
            manual_dir = str(data_dir)
        try:
            builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
        except Exception as err:  # TFDS fails in many ways (network, disk, checksum, manual files): all "not available"
            raise _unavailable(name, builder, data_dir, download, first_line(err)) from None
    elif not builder.is_prepared():
        raise _unavailable(name, builder, data_dir, download, None)
    info = builder.info
    image_key, label_key = _image_label_keys(tfds, name, info)
    specs = _split_specs(builder, validation, test)
    shape = info.features[image_key].shape
    described = [info.full_name] + [f"{split}\t{spec}\t{count}" for split, (spec, count) in sorted(specs.items())]
    fingerprint = hashlib.sha256("\n".join(described).encode()).hexdigest()
    return StreamedDataset(
        f"tfds:{name}",
        list(info.features[label_key].names),
        {
            split: _tfds_split(tfds, builder, spec, count, image_key, label_key)
            for split, (spec, count) in specs.items()
        },
        1 if shape[-1] == 1 else 3,  # RGBA → RGB
        origin=f"tfds:{info.full_name}",
        image_size=tuple(shape[:2]) if None not in shape[:2] else None,
        fingerprint=fingerprint,
    )
