"""Captioned images: captions files, the composed Fashion-MNIST scenes, TFDS examples, the training pipeline."""

import json

import numpy as np
import pytest
import tensorflow as tf

from kvision.data.captions import (
    SCENE_ITEM_NAMES,
    CaptionSet,
    caption_items,
    caption_pipeline,
    caption_set_from_examples,
    coco_captions,
    compose_scenes,
    fashion_mnist_scenes,
    load_caption_images,
    read_captions,
    read_captions_dir,
    scene_caption,
)
from kvision.data.dataset import ImageDataset
from kvision.data.text import END_ID, PAD_ID, START_ID, WordPieceVocabulary
from kvision.errors import DataError
from tests.data.writers import write_image


def item_images(count, value_of_label, seed=0):
    """28×28 items whose constant pixel value tells their label: ``value_of_label(label)``."""
    labels = np.random.default_rng(seed).integers(0, 10, count)
    images = np.stack([np.full((28, 28, 1), value_of_label(label), np.uint8) for label in labels])
    return images, labels


def cells_of(scene, value_to_label):
    """The label in each cell of a 2×2 scene (None where empty), read from the pixel values."""
    half = scene.shape[0] // 2
    cells = []
    for row in range(2):
        for col in range(2):
            values = np.unique(scene[row * half : (row + 1) * half, col * half : (col + 1) * half])
            cells.append(value_to_label(int(values.max())) if values.max() else None)
    return cells


def test_scene_captions_read_rows_left_to_right_and_top_above_bottom():
    assert scene_caption([7, 8, None, None]) == "a sneaker to the left of a bag"
    assert scene_caption([9, None, None, 0]) == "an ankle boot above a top"
    assert scene_caption([None, 4, 1, 3]) == "a coat above a trouser to the left of a dress"
    assert scene_caption([2, 5, 6, 9]) == "a pullover to the left of a sandal above a shirt to the left of an ankle boot"
    assert caption_items("a bag above an ankle boot to the left of a top") == ["bag", "ankle boot", "top"]
    assert caption_items("A Shirt") == ["shirt"] and caption_items("a t shirts") == []


def test_composed_scenes_are_captioned_from_what_was_placed_and_where():
    images, labels = item_images(50, lambda label: 10 + label)
    scenes, captions = compose_scenes(images, labels, 40, seed=3, canvas=64)
    assert scenes.shape == (40, 64, 64, 1) and scenes.dtype == np.uint8
    counts = set()
    for scene, caption in zip(scenes, captions):
        cells = cells_of(scene, lambda value: value - 10)
        assert caption == scene_caption(cells)
        counts.add(sum(cell is not None for cell in cells))
        assert [SCENE_ITEM_NAMES.index(name) for name in caption_items(caption)] == [c for c in cells if c is not None]
    assert counts == {2, 3, 4}


def test_composed_scenes_are_deterministic_under_a_seed():
    images, labels = item_images(50, lambda label: 10 + label)
    first, first_captions = compose_scenes(images, labels, 10, seed=5)
    again, again_captions = compose_scenes(images, labels, 10, seed=5)
    other, _ = compose_scenes(images, labels, 10, seed=6)
    np.testing.assert_array_equal(first, again)
    assert first_captions == again_captions and not np.array_equal(first, other)
    with pytest.raises(DataError, match="canvas at least twice the item size 28"):
        compose_scenes(images, labels, 1, canvas=48)


def test_scenes_are_written_as_captions_files_the_loader_reads(tmp_path):
    train = item_images(30, lambda label: 10 + label, seed=1)
    test = item_images(30, lambda label: 100 + label, seed=2)
    dataset = ImageDataset("fashion_mnist", [str(i) for i in range(10)], train, test, origin="test")
    directory = fashion_mnist_scenes(tmp_path / "scenes", dataset, train=12, validation=3, test=5, seed=0)
    assert sorted(p.name for p in directory.iterdir()) == ["images", "settings.json", "test.tsv", "train.tsv", "validation.tsv"]
    first = (directory / "test.tsv").read_text().splitlines()[0]
    assert first.startswith("images/test/000000.png\t")
    splits = read_captions_dir(directory)
    assert {split: len(pairs) for split, pairs in splits.items()} == {"train": 12, "validation": 3, "test": 5}
    test_set = load_caption_images(splits["test"], (64, 64, 1))
    for image, (_, caption) in zip(test_set.images, test_set.pairs):
        assert caption == scene_caption(cells_of(image, lambda value: value - 100)), "test scenes hold test items only"
    assert fashion_mnist_scenes(tmp_path / "scenes", dataset, train=12, validation=3, test=5, seed=0) == directory
    with pytest.raises(DataError, match="holds other data"):
        fashion_mnist_scenes(tmp_path / "scenes", dataset, train=13, validation=3, test=5, seed=0)
    assert json.loads((directory / "settings.json").read_text())["train"] == 12
    assert not list(tmp_path.glob(".scenes.*")), "no temporary directory left behind"


def write_folder(root, lines, images):
    for name, image in images.items():
        write_image(root / name, image)
    (root / "captions.tsv").write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return root / "captions.tsv"


def test_a_captions_file_may_caption_an_image_several_times(tmp_path):
    rng = np.random.default_rng(0)
    images = {f"img/{i}.png": rng.integers(0, 256, (10 + i, 12, 3), dtype=np.uint8) for i in range(3)}
    path = write_folder(tmp_path, ["img/0.png\ta red thing", "", "img/0.png\ta thing, red", "img/1.png\ttwo",
                                   "img/2.png\tthree  "], images)
    pairs = read_captions(path)
    assert [caption for _, caption in pairs] == ["a red thing", "a thing, red", "two", "three"]
    assert pairs[0][0] == str(tmp_path / "img" / "0.png")
    caption_set = load_caption_images(pairs, (8, 8, 1))
    assert caption_set.images.shape == (3, 8, 8, 1), "each image decoded once, resized and made grey"
    images_of, references = caption_set.references()
    assert references == [["a red thing", "a thing, red"], ["two"], ["three"]] and len(images_of) == 3
    splits = read_captions_dir(tmp_path, validation=0.3, test=0.3)
    assert sum(len(split) for split in splits.values()) == 4
    counts = [sum(image.endswith("0.png") for image, _ in split) for split in splits.values()]
    assert sorted(counts) == [0, 0, 2], "both captions of an image land in one split"


@pytest.mark.parametrize(
    "content, message",
    [
        ("img.png a caption without a tab\n", "Expected image_path<TAB>caption on every line"),
        ("img.png\t\n", "Expected image_path<TAB>caption on every line"),
        ("missing.png\tcaption\n", "1 missing, e.g."),
        ("\n\n", "Expected at least one caption"),
    ],
)
def test_bad_captions_files_raise_a_clear_error(tmp_path, content, message):
    write_image(tmp_path / "img.png", np.zeros((4, 4, 1), np.uint8))
    (tmp_path / "captions.tsv").write_text(content)
    with pytest.raises(DataError, match=message):
        read_captions(tmp_path / "captions.tsv")


def test_missing_or_undecodable_data_raise_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="Expected a captions file"):
        read_captions(tmp_path / "nope.tsv")
    with pytest.raises(DataError, match="captions.tsv or .*train.tsv and test.tsv"):
        read_captions_dir(tmp_path)
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match="bad.png: expected a JPEG, PNG, GIF or BMP image. Received: 12 bytes starting"):
        load_caption_images([(str(tmp_path / "bad.png"), "x")], (8, 8, 1))
    (tmp_path / "binary.tsv").write_bytes(b"a.png\t\xff\xfe\n")
    with pytest.raises(DataError, match="Expected UTF-8"):
        read_captions(tmp_path / "binary.tsv")


def test_coco_captions_examples_become_a_caption_set():
    """The TFDS ``coco_captions`` feature layout, without the 38 GB download."""
    rng = np.random.default_rng(0)
    examples = tf.data.Dataset.from_generator(
        lambda: iter([
            {"image": rng.integers(0, 256, (20, 30, 3), dtype=np.uint8), "image/filename": b"a.jpg",
             "captions": {"text": np.array([b"A dog. ", b"a brown dog"]), "id": np.array([1, 2])}},
            {"image": rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), "image/filename": b"b.jpg",
             "captions": {"text": np.array([b"a cat"]), "id": np.array([3])}},
        ]),
        output_signature={
            "image": tf.TensorSpec([None, None, 3], tf.uint8),
            "image/filename": tf.TensorSpec([], tf.string),
            "captions": {"text": tf.TensorSpec([None], tf.string), "id": tf.TensorSpec([None], tf.int64)},
        },
    )
    caption_set = caption_set_from_examples(examples, (16, 16, 3))
    assert caption_set.images.shape == (2, 16, 16, 3) and caption_set.image_ids == ["a.jpg", "b.jpg"]
    assert caption_set.pairs == [("a.jpg", "A dog."), ("a.jpg", "a brown dog"), ("b.jpg", "a cat")]


def test_the_pipeline_teacher_forces_and_masks_padding():
    vocab = WordPieceVocabulary.from_symbols(["a bag above a top to the left of"], max_length=6)
    images = np.arange(3 * 4 * 4).reshape(3, 4, 4, 1).astype(np.uint8)
    pairs = [("x", "a bag"), ("y", "a top above a bag"), ("z", "a top to the left of a bag"), ("x", "a top")]
    caption_set = CaptionSet(images, ["x", "y", "z"], pairs)
    dataset, batches = caption_pipeline(caption_set, vocab, batch_size=2, training=False)
    assert batches == 2, "the 8-token caption is dropped: 3 examples"
    (inputs, target_out, weights), (last_inputs, _, _) = list(dataset)
    ids = lambda text: [vocab.tokens.index(word) for word in text.split()]  # noqa: E731
    np.testing.assert_array_equal(inputs["target_in"].numpy(),
                                  [[START_ID, *ids("a bag"), PAD_ID, PAD_ID, PAD_ID], [START_ID, *ids("a top above a bag")]])
    np.testing.assert_array_equal(target_out.numpy()[0], [*ids("a bag"), END_ID, PAD_ID, PAD_ID, PAD_ID])
    np.testing.assert_array_equal(weights.numpy()[0], [1, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(inputs["image"].numpy(), images[[0, 1]].astype(np.float32))
    np.testing.assert_array_equal(last_inputs["image"].numpy(), images[[0]].astype(np.float32), "image x again")
    with pytest.raises(DataError, match="one image per distinct image id"):
        CaptionSet(images, ["x", "y", "z"], [("w", "a bag")])


def test_coco_captions_that_tfds_cannot_load_raise_a_clear_error(monkeypatch):
    import tensorflow_datasets as tfds

    def offline(*args, **kwargs):
        raise ConnectionError("Failed to resolve 'storage.googleapis.com'\nmore detail")

    monkeypatch.setattr(tfds, "load", offline)
    with pytest.raises(DataError, match="coco_captions split 'val'.*Received: ConnectionError: Failed to resolve"):
        coco_captions("val", (64, 64, 3))
