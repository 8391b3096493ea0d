"""The arithmetic behind the benchmark figures: FLOP counts, throughput ratios, the rendered tables."""

import keras
import pytest

from bench.__main__ import markdown_table
from bench.harness import throughput_rows
from bench.roofline import forward_flops
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
