"""``python -m kvision.data.convert``: real on-disk formats to shards, read back identical; errors in one line."""

import json

import numpy as np
import pytest
import tensorflow as tf

from kvision.data.convert import main
from kvision.data.tfrecord import open_tfrecords
from tests.data import writers


def pixels_by_id(split):
    """``{id: (decoded image, label)}`` of a streamed split."""
    return {example_id.decode(): (tf.io.decode_png(encoded).numpy(), int(label))
            for encoded, label, example_id in split.read().as_numpy_iterator()}


def test_idx_files_to_shards_and_back(tmp_path, capsys):
    written = writers.write_idx_dataset(tmp_path / "fm")
    output = tmp_path / "shards"
    main(["--dataset", "fashion_mnist", "--data-dir", str(tmp_path / "fm"), "--output", str(output),
          "--shards", "2", "--no-download"])
    assert f"{output}: train 6 examples in 2 shards, test 4 examples in 2 shards" in capsys.readouterr().out
    stream = open_tfrecords(output, verify=True)
    assert stream.channels == 1 and stream.image_size == (28, 28) and stream.name == "fashion_mnist"
    for split, (images, labels) in (("train", written.train), ("test", written.test)):
        found = pixels_by_id(stream.splits[split])
        assert len(found) == len(labels)
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            np.testing.assert_array_equal(found[f"fashion_mnist:{split}:{i}"][0], image)
            assert found[f"fashion_mnist:{split}:{i}"][1] == label
    manifest = json.loads((output / "manifest.json").read_text())
    assert manifest["command"].startswith("python -m kvision.data.convert --dataset fashion_mnist --data-dir ")
    assert manifest["class_names"][0] == "T-shirt/top" and manifest["origin"] == str(tmp_path / "fm")


def test_a_streamed_folder_keeps_its_files_bytes(tmp_path, capsys):
    from tests.data.streams import write_folder

    images = writers.random_images(6, 8, 8, 3)
    paths = write_folder(tmp_path / "photos" / "train", images, [0, 1, 0, 1, 0, 1], fmt="jpeg")
    write_folder(tmp_path / "photos" / "test", images[:2], [0, 1], fmt="jpeg")
    main(["--dataset", "folder", "--data-dir", str(tmp_path / "photos"), "--output", str(tmp_path / "shards")])
    assert "train 6 examples in 1 shards, test 2 examples in 1 shards" in capsys.readouterr().out
    stored = {i.decode(): encoded for encoded, _, i in open_tfrecords(tmp_path / "shards").splits["train"].read()
              .as_numpy_iterator()}
    assert stored == {str(path): path.read_bytes() for path in paths}  # JPEG bytes kept as they were


def test_cifar_with_image_size_and_validation(tmp_path, capsys):
    writers.write_cifar10_binary(tmp_path, per_batch=6)
    output = tmp_path / "shards"
    argv = ["--dataset", "cifar10", "--data-dir", str(tmp_path / "cifar-10-batches-bin"), "--output", str(output),
            "--image-size", "16", "--validation-size", "0.3", "--no-download"]
    main(argv)
    stream = open_tfrecords(output)
    counts = stream.counts()
    assert counts["train"] + counts["validation"] == 30 and counts["test"] == 4 and counts["validation"] > 0
    assert stream.image_size == (16, 16)
    image, _ = next(iter(pixels_by_id(stream.splits["validation"]).values()))
    assert image.shape == (16, 16, 3)
    capsys.readouterr()
    main(argv)
    assert "already holds cifar10" in capsys.readouterr().out


def test_errors_are_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--dataset", "mnist", "--data-dir", str(tmp_path / "nowhere"), "--output", str(tmp_path / "out")])
    assert str(exit_info.value).startswith("error: Could not find the mnist dataset")
    writers.write_idx_dataset(tmp_path / "fm")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    with pytest.raises(SystemExit) as exit_info:
        main(["--dataset", "fashion_mnist", "--data-dir", str(tmp_path / "fm"), "--output", str(tmp_path / "taken")])
    assert str(exit_info.value).startswith(f"error: {tmp_path / 'taken'}: expected a new directory")
    with pytest.raises(SystemExit) as exit_info:
        main(["--dataset", "fashion_mnist", "--data-dir", str(tmp_path / "fm"), "--output", str(tmp_path / "out"),
              "--shards", "0"])
    assert str(exit_info.value) == "error: Expected shards to be a positive int or None. Received: shards=0"
    assert not (tmp_path / "out").exists()


def test_bad_flag_is_one_error_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--dataset", "mnist", "--output", str(tmp_path / "out"), "--format", "gif"])
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert exited.value.code == 2
    assert errors == ["python -m kvision.data.convert: error: argument --format: invalid choice: 'gif' "
                      "(choose from 'png', 'jpeg')"]
