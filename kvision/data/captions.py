"""Captioned images: captions files, TFDS ``coco_captions``, scenes composed from Fashion-MNIST, pipelines.

A captions file has one ``image_path<TAB>caption`` line per caption (an image
may have several); relative paths are read from the file's directory (or
``image_dir``). A directory holds either ``captions.tsv``, split by hashing
the image path, or ``train.tsv`` and ``test.tsv`` (and optionally
``validation.tsv``, else validation is hashed off train), the layout of the
Karpathy splits of COCO and Flickr. Captions are tokenised by the seq2seq
vocabularies of ``kvision.data.text``.

The offline dataset: scenes of 2–4 Fashion-MNIST items placed in the cells of
a 2×2 grid on a ``canvas``×``canvas`` black image, captioned from what was
placed where — "a sneaker to the left of a bag above an ankle boot" — written
as PNGs and captions files, so it goes through the same loader.
"""

import dataclasses
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from kvision.data.image_folder import decode_file, to_channels
from kvision.data.resize import resize_uint8
from kvision.data.text import (
    PAD_ID,
    SPLITS,
    group_references,
    split_by_source,
    teacher_forced_batches,
    teacher_forcing,
    text_lines,
)
from kvision.errors import DataError

# Fashion-MNIST's classes as a caption names them, in label order.
SCENE_ITEM_NAMES = ("top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot")
_ITEM = re.compile(r"\b(" + "|".join(sorted(SCENE_ITEM_NAMES, key=len, reverse=True)) + r")\b")


@dataclasses.dataclass
class CaptionSet:
    """Images and their captions: ``images`` uint8 ``[N, H, W, C]``, ``image_ids[i]`` naming
    ``images[i]``, and ``pairs`` of ``(image_id, caption)``, several per image allowed."""

    images: np.ndarray
    image_ids: list
    pairs: list

    def __post_init__(self):
        known = set(self.image_ids)
        unknown = next((image_id for image_id, _ in self.pairs if image_id not in known), None)
        if unknown is not None or len(known) != len(self.image_ids) or len(self.images) != len(self.image_ids):
            raise DataError(
                f"Expected one image per distinct image id and captions of those images only. Received: "
                f"{len(self.images)} images, {len(self.image_ids)} ids ({len(known)} distinct), caption of {unknown!r}"
            )

    def references(self):
        """``(images [M, H, W, C], references)``: each captioned image once with all its captions."""
        ids, references = group_references(self.pairs)
        index = {image_id: i for i, image_id in enumerate(self.image_ids)}
        return self.images[[index[i] for i in ids]], references


# --- captions files ---------------------------------------------------------------


def read_captions(path, image_dir=None):
    """``(image_path, caption)`` pairs of a captions file, paths resolved and checked to exist."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Expected a captions file (image_path<TAB>caption per line). Received: {str(path)!r}, which does not exist")
    root = Path(image_dir) if image_dir is not None else path.parent
    pairs = []
    for number, line in text_lines(path):
        image, tab, caption = line.partition("\t")
        if not tab or not image.strip() or not caption.strip():
            raise DataError(f"Expected image_path<TAB>caption on every line of {path}. Received: line {number}: {line[:80]!r}")
        pairs.append((str(root / image.strip()), caption.strip()))
    if not pairs:
        raise DataError(f"Expected at least one caption in {path}. Received: none")
    missing = sorted({image for image, _ in pairs if not Path(image).is_file()})
    if missing:
        raise DataError(f"Expected every image named in {path} to exist. Received: {len(missing)} missing, e.g. {missing[0]}")
    return pairs


def read_captions_dir(directory, *, validation=0.05, test=0.1, seed=0):
    """``{"train", "validation", "test"}`` → pairs of a captions directory (see the module docstring)."""
    directory = Path(directory)
    if (directory / "train.tsv").is_file():
        splits = {name: read_captions(directory / f"{name}.tsv") for name in SPLITS if (directory / f"{name}.tsv").is_file()}
        if "test" not in splits:
            raise DataError(f"Expected test.tsv beside {directory / 'train.tsv'}. Received: none")
        if "validation" not in splits:
            held = split_by_source(splits["train"], validation=validation, test=0, seed=seed)
            splits.update(train=held["train"], validation=held["validation"])
        return splits
    if (directory / "captions.tsv").is_file():
        return split_by_source(read_captions(directory / "captions.tsv"), validation=validation, test=test, seed=seed)
    raise DataError(f"Expected {directory}/captions.tsv or {directory}/train.tsv and test.tsv. Received: neither")


def load_caption_images(pairs, image_shape):
    """A ``CaptionSet`` of file ``pairs``: each distinct image decoded once, as ``image_shape`` (H, W, C).

    Images of another size are resized (antialiased); grey and colour are
    converted to ``C`` channels. An undecodable file raises ``DataError`` naming it.
    """
    paths = list(dict.fromkeys(image for image, _ in pairs))
    images = np.empty((len(paths), *image_shape), np.uint8)
    for i, path in enumerate(tqdm(paths, desc="Decoding images", disable=None)):
        images[i] = _as_shape(decode_file(path, None), image_shape)
    return CaptionSet(images, paths, list(pairs))


def _as_shape(image, image_shape):
    """A decoded uint8 ``image`` with ``image_shape``'s channels, resized to its height and width if needed."""
    height, width, channels = image_shape
    image = to_channels(image, channels)
    return image if image.shape[:2] == (height, width) else resize_uint8(image, (height, width))


def coco_captions(split, image_shape, *, limit=None):
    """A ``CaptionSet`` of a TFDS ``coco_captions`` split (``train``, ``val``, ``test``, ``restval``).

    Downloads and prepares COCO 2014 on first use (about 38 GB); images are
    resized to ``image_shape`` and kept in memory, so ``limit`` caps the
    number of images read. Every caption of an image is kept.
    """
    import tensorflow_datasets as tfds  # slow to import; only needed on this path

    try:
        dataset = tfds.load("coco_captions", split=split)
    except Exception as error:  # no network, no disk space, an unknown split: TFDS raises many kinds
        raise DataError(f"Expected TFDS to load coco_captions split {split!r} (downloads ~38 GB on first use). "
                        f"Received: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}") from None
    if limit is not None:
        dataset = dataset.take(limit)
    return caption_set_from_examples(dataset, image_shape)


def caption_set_from_examples(examples, image_shape):
    """A ``CaptionSet`` of TFDS ``coco_captions`` examples (``image``, ``image/filename``, ``captions/text``)."""
    images, ids, pairs = [], [], []
    for example in tqdm(examples.as_numpy_iterator(), desc="Reading coco_captions", disable=None):
        images.append(_as_shape(example["image"], image_shape))
        ids.append(example["image/filename"].decode("utf-8"))
        pairs += [(ids[-1], text.decode("utf-8").strip()) for text in example["captions"]["text"]]
    if not images:
        raise DataError("Expected at least one coco_captions example. Received: none")
    return CaptionSet(np.stack(images), ids, pairs)


# --- scenes composed from Fashion-MNIST ---------------------------------------------


def _article(name):
    return f"an {name}" if name[0] in "aeiou" else f"a {name}"


def scene_caption(cells, names=SCENE_ITEM_NAMES):
    """The caption of a 2×2 grid ``cells`` (label or None; row-major: top-left, top-right, bottom-left, bottom-right).

    Each row reads left to right ("a top to the left of a bag"); a top row is
    "above" a bottom row.
    """
    rows = []
    for row in (cells[:2], cells[2:]):
        items = [_article(names[label]) for label in row if label is not None]
        if items:
            rows.append(" to the left of ".join(items))
    return " above ".join(rows)


def caption_items(caption):
    """The item names of a scene caption, in order: ``"a bag above an ankle boot"`` → ``["bag", "ankle boot"]``."""
    return _ITEM.findall(caption.lower())


def compose_scenes(images, labels, count, *, seed=0, canvas=64, items=(2, 4)):
    """``(scenes uint8 [count, canvas, canvas, C], captions)`` from item ``images`` and their ``labels``.

    Each scene takes ``items[0]``..``items[1]`` random images, puts each in a
    distinct random cell of a 2×2 grid at a random offset inside the cell, and
    is captioned by ``scene_caption``. The same arguments give the same scenes.
    """
    size = images.shape[1]
    cell = canvas // 2
    if cell < size:
        raise DataError(f"Expected a canvas at least twice the item size {size}. Received: canvas={canvas}")
    if not (1 <= items[0] <= items[1] <= 4):
        raise DataError(f"Expected 1 <= min items <= max items <= 4 (a 2×2 grid). Received: items={items}")
    rng = np.random.default_rng(seed)
    scenes = np.zeros((count, canvas, canvas, images.shape[-1]), np.uint8)
    captions = []
    for scene in scenes:
        cells = [None] * 4
        for position in rng.choice(4, size=rng.integers(items[0], items[1] + 1), replace=False):
            pick = rng.integers(len(images))
            y, x = (position // 2) * cell + rng.integers(cell - size + 1), (position % 2) * cell + rng.integers(cell - size + 1)
            scene[y : y + size, x : x + size] = images[pick]
            cells[position] = int(labels[pick])
        captions.append(scene_caption(cells))
    return scenes, captions


def write_captioned_images(directory, splits, *, settings=None):
    """Write ``{split: (images, captions)}`` as PNGs under ``directory/images/<split>/`` and ``directory/<split>.tsv``.

    ``settings`` (what made the images) go to ``directory/settings.json``.
    Written into a temporary directory and renamed into place, so a killed
    run leaves no half-written dataset.
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}."))
    try:
        if settings is not None:
            (tmp / "settings.json").write_text(json.dumps(settings, indent=1))
        for split, (images, captions) in splits.items():
            (tmp / "images" / split).mkdir(parents=True)
            with open(tmp / f"{split}.tsv", "w", encoding="utf-8") as f:
                written = tqdm(zip(images, captions, strict=True), total=len(images), desc=f"Writing {split} images", disable=None)
                for i, (image, caption) in enumerate(written):
                    name = f"images/{split}/{i:06d}.png"
                    (tmp / name).write_bytes(tf.io.encode_png(image).numpy())
                    f.write(f"{name}\t{caption}\n")
        os.replace(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def fashion_mnist_scenes(directory, dataset, *, train=20000, validation=1000, test=2000, seed=0, canvas=64):
    """Compose and write the scenes dataset into ``directory`` unless it is there; returns ``directory``.

    A ``directory`` that exists must hold scenes made with the same settings
    (its ``settings.json``), else ``DataError``.

    Test scenes are made of Fashion-MNIST's test images only, train and
    validation scenes of its training images, so no item image is seen both
    in training and in the test. ``dataset`` is the ``ImageDataset`` from
    ``load_dataset("fashion_mnist")``.
    """
    directory = Path(directory)
    settings = {"source": dataset.name, "train": train, "validation": validation, "test": test, "seed": seed, "canvas": canvas}
    if directory.exists():
        recorded = json.loads((directory / "settings.json").read_text()) if (directory / "settings.json").is_file() else None
        if recorded != settings:
            raise DataError(
                f"{directory} holds other data; remove it or choose another directory. "
                f"Expected: scenes made with {settings}. Received: {recorded or 'no settings.json'}"
            )
        return directory
    (train_images, train_labels), (test_images, test_labels) = dataset.train, dataset.test
    splits = {
        "train": compose_scenes(train_images, train_labels, train, seed=seed, canvas=canvas),
        "validation": compose_scenes(train_images, train_labels, validation, seed=seed + 1, canvas=canvas),
        "test": compose_scenes(test_images, test_labels, test, seed=seed + 2, canvas=canvas),
    }
    return write_captioned_images(directory, splits, settings=settings)


# --- pipeline ----------------------------------------------------------------------


def encode_captions(captions, vocab):
    """``(ids ragged int32 [N, None], keep bool [N])``: tokenised captions and which fit ``vocab.max_length``.

    A caption whose tokens plus ``[START]``/``[END]`` exceed the length is
    dropped (a truncated caption would teach a wrong answer).
    """
    ids = vocab.tokenize(tf.constant(list(captions), tf.string))
    return ids, (ids.row_lengths() + 1 <= vocab.max_length).numpy()


def caption_pipeline(caption_set, vocab, *, batch_size, training, seed=None):
    """A ``tf.data`` pipeline of ``({"image", "target_in"}, target_out, weights)`` batches.

    ``image`` is float32 ``[B, H, W, C]`` in 0..255 (the models normalise
    inside); ``target_in`` is ``[START] w₁ … wₙ`` and ``target_out`` is
    ``w₁ … wₙ [END]``, 0-padded to the longest caption of the batch;
    ``weights`` is 1 on real target positions. One example per caption.

    Returns:
        ``(dataset, num_batches)``.
    """
    if not caption_set.pairs:
        raise DataError("Expected at least one caption. Received: none")
    index = {image_id: i for i, image_id in enumerate(caption_set.image_ids)}
    ids, keep = encode_captions([caption for _, caption in caption_set.pairs], vocab)
    if not keep.any():
        raise DataError(f"Expected captions of at most {vocab.max_length - 1} tokens. Received: none that short")
    rows = np.array([index[image_id] for image_id, _ in caption_set.pairs])[keep]
    targets = tf.ragged.boolean_mask(ids, keep)
    num_batches = -(-len(rows) // batch_size)

    ds = tf.data.Dataset.from_tensor_slices((caption_set.images[rows], targets))
    if training:
        ds = ds.shuffle(len(rows), seed=seed, reshuffle_each_iteration=True)

    ds = ds.map(lambda image, target: (tf.cast(image, tf.float32), *teacher_forcing(target)),
                num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.padded_batch(batch_size, padding_values=(0.0, PAD_ID, PAD_ID))
    return teacher_forced_batches(ds, "image", num_batches), num_batches
