"""The arithmetic behind the benchmark figures: FLOP counts, throughput ratios, the rendered tables; their data."""

import keras
import pytest
from PIL import Image

from bench.__main__ import markdown_table
from bench.harness import throughput_rows, write_image_folder
from bench.input_throughput import rows_and_bar
from bench.roofline import forward_flops
from bench.startup import imports_tensorflow, startup_rows
from kvision.models import build


def test_forward_flops_are_two_per_multiply_add_of_every_conv_and_dense_layer():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)  # 8·8 outputs × 3·3·3 inputs × 4 filters
    x = keras.layers.Conv2D(6, 1, strides=2)(x)  # 4·4 outputs × 4 inputs × 6 filters
    x = keras.layers.BatchNormalization()(x)  # not counted
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(5)(x)  # 96 × 5
    model = keras.Model(inputs, outputs)
    assert forward_flops(model) == 2 * (8 * 8 * 27 * 4 + 4 * 4 * 4 * 6 + 96 * 5)


def test_resnet20_costs_the_published_41_million_multiply_adds():
    assert forward_flops(build("resnet20", (32, 32, 3), 10)) / 2 == pytest.approx(40.55e6, rel=0.01)


def test_throughput_rows_are_ratios_to_kvision_of_the_median_step():
    rows = throughput_rows({"kvision": [0.2, 0.1, 0.3], "other": [0.4, 0.4, 0.5]}, batch=100)
    assert [row["images_per_s"] for row in rows] == [500.0, 250.0]
    assert [row["vs_kvision"] for row in rows] == ["1.00x", "0.50x"]


def test_markdown_table_right_aligns_all_but_the_first_column():
    table = markdown_table([("name", "set-up"), ("ms", "ms/step")], [{"name": "kvision", "ms": 1.5}])
    assert table.splitlines() == ["| set-up | ms/step |", "|---|---:|", "| kvision | 1.5 |"]


def test_input_throughput_bar_needs_every_kvision_row_at_1_2x_the_faster_baseline():
    # Seconds per 64 images, one per round: kvision folder 640/s, TFRecord 512/s, Keras 320/s, PyTorch 400/s.
    times = {"kvision folder": [0.1, 0.1, 0.2], "kvision TFRecord": [0.125] * 3, "Keras": [0.2] * 3,
             "PyTorch": [0.16, 0.1, 0.16]}
    rows, baseline, passed = rows_and_bar(times)
    assert baseline == "PyTorch" and passed
    assert [row["images_per_s"] for row in rows] == [640, 512, 320, 400]
    assert rows[0]["range"] == "320–640" and rows[1]["vs_baseline"] == "1.28x" and rows[3]["vs_kvision"] == "0.62x"
    _, _, passed = rows_and_bar({**times, "kvision TFRecord": [0.14] * 3})  # 457/s: 1.14x PyTorch
    assert not passed


def test_write_image_folder_writes_train_and_test_class_folders_of_jittered_jpegs(tmp_path):
    write_image_folder(tmp_path, 30, size=(40, 60), jitter=0.2, detail=50, classes=3)
    train, test = sorted((tmp_path / "train").rglob("*.jpg")), sorted((tmp_path / "test").rglob("*.jpg"))
    assert len(train) == 30 and len(test) == 3
    assert {path.parent.name for path in train} == {"class0", "class1", "class2"}
    sizes = {Image.open(path).size for path in train}
    assert len(sizes) > 1 and all(48 <= width <= 72 and 32 <= height <= 48 for width, height in sizes)


def test_startup_rows_are_ratios_to_python_alone_and_importtime_logs_tell_if_tensorflow_loaded():
    times = {"python -c pass": [0.02, 0.03, 0.02], "kvision.launch --help": [0.06, 0.05, 0.07]}
    rows = startup_rows(times, {"python -c pass": False, "kvision.launch --help": True})
    assert rows[1] == {"command": "kvision.launch --help", "median_ms": 60, "range_ms": "50–70", "vs_python": "3.0x",
                       "tensorflow": "yes"}
    log = ("import time: self [us] | cumulative | imported package\n"
           "import time:       120 |        120 |     tensorflow.python.eager\n")
    assert imports_tensorflow(log) and not imports_tensorflow(log.replace("tensorflow", "tensorboard"))
