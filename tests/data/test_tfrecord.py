"""TFRecord shards: round trips, the keys, the manifest, atomic writes, sharding between pipelines, bad shards."""

import json

import numpy as np
import pytest
import tensorflow as tf

from kvision.data import ImageDataset
from kvision.data import tfrecord
from kvision.data.stream import StreamedDataset, StreamSplit
from kvision.data.tfrecord import file_sha256, open_tfrecords, write_tfrecords
from kvision.errors import DataError
from tests.data import writers

KEYS = {"image/encoded", "image/format", "image/class/label", "image/height", "image/width", "image/id"}


def tiny_dataset(train=12, test=5, name="tiny"):
    images, labels = writers.random_examples(train + test, 6, 3, 3, seed=7)
    return ImageDataset(name, ["ant", "bee", "cat"], (images[:train], labels[:train]),
                        (images[train:], labels[train:]), origin="memory")


def read_all(split, **kwargs):
    """``{id: (encoded, label)}`` of everything ``split.read(**kwargs)`` yields, failing on a repeated id."""
    found = {}
    for encoded, label, example_id in split.read(**kwargs).as_numpy_iterator():
        assert example_id not in found
        found[example_id.decode()] = (encoded, int(label))
    return found


def test_image_dataset_round_trip(tmp_path):
    dataset = tiny_dataset()
    manifest = write_tfrecords(dataset, tmp_path / "out", shards=3)
    stream = open_tfrecords(tmp_path / "out", verify=True)
    assert stream.counts() == {"train": 12, "test": 5} and stream.class_names == ["ant", "bee", "cat"]
    assert stream.channels == 3 and stream.image_size == (6, 6) and stream.name == "tiny"
    for split, (images, labels) in (("train", dataset.train), ("test", dataset.test)):
        shards = manifest["splits"][split]
        assert [s["file"] for s in shards] == [f"{split}-0000{i}-of-00003.tfrecord" for i in range(3)]
        assert sum(s["count"] for s in shards) == len(labels)
        for shard in shards:
            path = tmp_path / "out" / shard["file"]
            assert shard["sha256"] == file_sha256(path)
            assert shard["count"] == sum(1 for _ in tf.data.TFRecordDataset(str(path)))
        found = read_all(stream.splits[split])
        assert sorted(found) == sorted(f"tiny:{split}:{i}" for i in range(len(labels)))
        for example_id, (encoded, label) in found.items():
            index = int(example_id.rsplit(":", 1)[1])
            np.testing.assert_array_equal(tf.io.decode_png(encoded).numpy(), images[index])  # PNG: lossless
            assert label == labels[index]
    assert json.loads((tmp_path / "out" / "manifest.json").read_text()) == manifest


def test_keys_are_exactly_model_gardens(tmp_path):
    write_tfrecords(tiny_dataset(), tmp_path / "out", shards=1)
    record = next(iter(tf.data.TFRecordDataset(str(tmp_path / "out" / "test-00000-of-00001.tfrecord"))))
    feature = tf.train.Example.FromString(record.numpy()).features.feature
    assert set(feature) == KEYS
    assert feature["image/format"].bytes_list.value == [b"png"]
    assert feature["image/height"].int64_list.value == [6] and feature["image/width"].int64_list.value == [6]
    assert feature["image/id"].bytes_list.value[0].startswith(b"tiny:test:")


def streamed(tmp_path):
    """A two-class ``StreamedDataset`` of PNG and JPEG files (10×8), and the bytes of each id."""
    images = writers.random_images(6, 10, 8, 3, seed=3)
    files = [writers.write_image(tmp_path / "src" / f"{i}.{'jpg' if i % 2 else 'png'}", image,
                                 fmt="jpeg" if i % 2 else "png") for i, image in enumerate(images)]
    by_id = {str(path): path.read_bytes() for path in files}

    def split(paths):
        def read(input_context=None, shuffle=False, seed=None):
            names = [str(p) for p in paths]
            return tf.data.Dataset.from_tensor_slices(
                ([by_id[n] for n in names], [int(n[-5]) % 2 for n in names], names))

        return StreamSplit(len(paths), read)

    dataset = StreamedDataset("folder", ["even", "odd"], {"train": split(files[:4]), "test": split(files[4:])},
                              channels=3, origin=str(tmp_path / "src"))
    return dataset, by_id


def test_streamed_dataset_keeps_jpeg_and_png_bytes(tmp_path):
    dataset, by_id = streamed(tmp_path)
    write_tfrecords(dataset, tmp_path / "out")
    stream = open_tfrecords(tmp_path / "out")
    assert stream.image_size is None and stream.counts() == {"train": 4, "test": 2}
    found = {**read_all(stream.splits["train"]), **read_all(stream.splits["test"])}
    assert {example_id: encoded for example_id, (encoded, _) in found.items()} == by_id
    assert all(label == int(example_id[-5]) % 2 for example_id, (_, label) in found.items())


def test_image_size_and_format_reencode(tmp_path):
    dataset, by_id = streamed(tmp_path)
    write_tfrecords(dataset, tmp_path / "out", image_size=4, image_format="jpeg")
    stream = open_tfrecords(tmp_path / "out")
    assert stream.image_size == (4, 4)
    for example_id, (encoded, _) in read_all(stream.splits["train"]).items():
        assert encoded[:3] == b"\xff\xd8\xff" and encoded != by_id[example_id]
        assert tf.io.decode_jpeg(encoded).shape == (4, 4, 3)


def test_validation_carved_by_id(tmp_path):
    manifest = write_tfrecords(tiny_dataset(train=40), tmp_path / "out", validation=0.25)
    stream = open_tfrecords(tmp_path / "out")
    counts = stream.counts()
    assert counts["train"] + counts["validation"] == 40 and 0 < counts["validation"] < 40
    validation = set(read_all(stream.splits["validation"]))
    assert not validation & set(read_all(stream.splits["train"]))
    # Another run chooses the same examples, byte for byte.
    again = write_tfrecords(tiny_dataset(train=40), tmp_path / "again", validation=0.25)
    assert again["splits"] == manifest["splits"]


def test_failure_mid_write_leaves_nothing_and_rerun_works(tmp_path, monkeypatch):
    real = tfrecord._ShardWriter.write
    calls = []

    def failing(self, record):
        calls.append(record)
        if len(calls) == 5:
            raise OSError("No space left on device")
        real(self, record)

    monkeypatch.setattr(tfrecord._ShardWriter, "write", failing)
    with pytest.raises(OSError, match="No space"):
        write_tfrecords(tiny_dataset(), tmp_path / "out")
    assert list(tmp_path.iterdir()) == []  # neither the output nor the staging directory
    monkeypatch.undo()
    write_tfrecords(tiny_dataset(), tmp_path / "out")
    assert open_tfrecords(tmp_path / "out", verify=True).counts() == {"train": 12, "test": 5}


def test_rerun_same_dataset_does_nothing_and_different_is_refused(tmp_path, capsys):
    write_tfrecords(tiny_dataset(), tmp_path / "out")
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").iterdir()}
    write_tfrecords(tiny_dataset(), tmp_path / "out")
    assert "already holds tiny" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").iterdir()} == before
    with pytest.raises(DataError, match=r"holds a different dataset.*Received: counts=.*name='tiny' \(now 'other'\)"):
        write_tfrecords(tiny_dataset(train=3, name="other"), tmp_path / "out")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="without a readable manifest.json"):
        write_tfrecords(tiny_dataset(), tmp_path / "junk")


def test_two_input_pipelines_read_disjoint_shards(tmp_path):
    write_tfrecords(tiny_dataset(), tmp_path / "out", shards=4)
    split = open_tfrecords(tmp_path / "out").splits["train"]
    parts = [read_all(split, input_context=tf.distribute.InputContext(2, i, 1)) for i in range(2)]
    assert not set(parts[0]) & set(parts[1])
    assert set(parts[0]) | set(parts[1]) == {f"tiny:train:{i}" for i in range(12)}
    assert len(parts[0]) == len(parts[1]) == 6  # whole shards of 3 each
    policy = tf.data.experimental.AutoShardPolicy
    assert split.read().options().experimental_distribute.auto_shard_policy == policy.FILE
    read_with_context = split.read(input_context=tf.distribute.InputContext(2, 0, 1))
    assert read_with_context.options().experimental_distribute.auto_shard_policy == policy.OFF


def test_fewer_shards_than_pipelines_shard_examples(tmp_path):
    write_tfrecords(tiny_dataset(), tmp_path / "out", shards=1)
    split = open_tfrecords(tmp_path / "out").splits["train"]
    parts = [read_all(split, input_context=tf.distribute.InputContext(3, i, 1), shuffle=True) for i in range(3)]
    assert sorted(sum((list(p) for p in parts), [])) == sorted(f"tiny:train:{i}" for i in range(12))


def test_shuffle_is_seeded_and_reshuffles(tmp_path):
    write_tfrecords(tiny_dataset(), tmp_path / "out", shards=6)
    split = open_tfrecords(tmp_path / "out").splits["train"]

    def epochs(seed):
        dataset = split.read(shuffle=True, seed=seed).map(lambda encoded, label, example_id: example_id)
        return list(dataset.repeat(2).as_numpy_iterator())

    first, again = epochs(1), epochs(1)
    assert first == again
    assert first[:12] != first[12:] and sorted(first[:12]) == sorted(first[12:])
    assert epochs(2) != first


def corrupt(path, how):
    data = bytearray(path.read_bytes())
    if how == "truncate":
        path.write_bytes(bytes(data[: len(data) - 40]))
    else:
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["truncate", "flip"])
def test_bad_shard_is_named_when_reading(tmp_path, monkeypatch, how):
    write_tfrecords(tiny_dataset(), tmp_path / "out", shards=2)
    shard = tmp_path / "out" / "train-00001-of-00002.tfrecord"
    corrupt(shard, how)
    if how == "truncate":
        with pytest.raises(DataError, match=rf"{shard}: expected \d+ bytes .*truncated.*Received: \d+ bytes"):
            open_tfrecords(tmp_path / "out")
        # A shard truncated after opening (size checks passed) is still named while reading.
        monkeypatch.setattr(tfrecord, "_check_shards", lambda *args: None)
    with pytest.raises(tf.errors.InvalidArgumentError, match=rf"{shard}: expected 6 records.*Received: \d readable"):
        read_all(open_tfrecords(tmp_path / "out").splits["train"])
    monkeypatch.undo()
    with pytest.raises(DataError, match=rf"{shard}: expected (SHA-256|\d+ bytes).*Received:"):
        open_tfrecords(tmp_path / "out", verify=True)


def test_label_out_of_range_names_the_shard(tmp_path):
    write_tfrecords(tiny_dataset(), tmp_path / "out", shards=1)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    manifest["class_names"] = ["ant"]
    (tmp_path / "out" / "manifest.json").write_text(json.dumps(manifest))
    expected = r"test-00000-of-00001.tfrecord: expected labels in \[0, 0\] \(1 classes\). Received: label [12]"
    with pytest.raises(tf.errors.InvalidArgumentError, match=expected):
        read_all(open_tfrecords(tmp_path / "out").splits["test"])


def test_bad_directories_are_one_line_errors(tmp_path):
    with pytest.raises(DataError, match=r"expected TFRecord shards .*Received: no such directory$"):
        open_tfrecords(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"Received: no manifest.json$"):
        open_tfrecords(tmp_path / "empty")
    write_tfrecords(tiny_dataset(), tmp_path / "out", shards=2)
    (tmp_path / "out" / "test-00001-of-00002.tfrecord").unlink()
    with pytest.raises(DataError, match=r"test-00001-of-00002.tfrecord: expected a TFRecord shard .*no such file$"):
        open_tfrecords(tmp_path / "out")
    (tmp_path / "out" / "manifest.json").write_text("{not json")
    with pytest.raises(DataError, match=r"manifest.json: expected a kvision-tfrecord manifest .*JSONDecodeError"):
        open_tfrecords(tmp_path / "out")
    (tmp_path / "out" / "manifest.json").write_text(json.dumps({"format": "kvision-tfrecord", "version": 1}))
    with pytest.raises(DataError, match=r"Received: KeyError: 'splits'"):
        open_tfrecords(tmp_path / "out")


def test_bad_options_are_refused(tmp_path):
    with pytest.raises(DataError, match=r"Received: shards=0"):
        write_tfrecords(tiny_dataset(), tmp_path / "out", shards=0)
    with pytest.raises(DataError, match=r"Received: image_format='gif'"):
        write_tfrecords(tiny_dataset(), tmp_path / "out", image_format="gif")
    with pytest.raises(DataError, match=r"Received: validation=1.5"):
        write_tfrecords(tiny_dataset(), tmp_path / "out", validation=1.5)
    assert not (tmp_path / "out").exists()
