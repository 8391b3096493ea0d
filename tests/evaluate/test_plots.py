"""The PNG plots: drawn on standalone figures (no pyplot), at their sizes, to files or file objects."""

import io
import struct

import matplotlib
import numpy as np
from matplotlib.image import imread

from kvision.evaluate.plots import plot_attention, plot_caption_attention, plot_confusion_matrix, plot_training_curves
from kvision.evaluate.robustness import plot_robustness


def png_size(data):
    """``(width, height)`` from a PNG's header chunk."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def drawn(plot, *args, **kwargs):
    """The PNG bytes ``plot`` writes to a file object, and the file object it returned."""
    buffer = io.BytesIO()
    returned = plot(*args, buffer, **kwargs)
    return buffer.getvalue(), returned


def test_confusion_matrix_is_a_row_normalised_heat_map_at_100_dpi(tmp_path):
    png, returned = drawn(plot_confusion_matrix, np.diag([5, 3, 7]), ["cat", "dog", "eel"])
    assert png_size(png) == (500, 500)  # at least 5 inches a side
    pixels = imread(io.BytesIO(png))[..., :3]
    full = np.array(matplotlib.colormaps["Blues"](1.0)[:3])  # every row's rate on the diagonal is 1
    assert np.any(np.all(np.abs(pixels - full) < 0.02, axis=-1)), "the diagonal cells are drawn at rate 1"
    assert isinstance(returned, io.BytesIO)

    path = plot_confusion_matrix(np.ones((30, 30), int), [f"c{i}" for i in range(30)], tmp_path / "cm.png")
    assert path == tmp_path / "cm.png" and png_size(path.read_bytes()) == (1200, 1200)  # 0.55 in a class + 2, at most 12 in


def test_training_curves_attention_and_robustness_have_one_panel_each(tmp_path):
    history = {"epoch": [0, 1, 2], "loss": [2.0, 1.0, 0.5], "val_loss": [2.1, 1.2, 0.9], "accuracy": [0.3, 0.6, 0.8]}
    assert png_size(drawn(plot_training_curves, history)[0]) == (1000, 400)  # loss and accuracy, 5 × 4 in each

    example = (np.eye(3), ["a", "b", "c"], ["x", "y", "z"])
    assert png_size(drawn(plot_attention, [example] * 3)[0]) == (1000, 800)  # 2 columns × 2 rows

    caption = (np.full((8, 8, 3), 128, np.uint8), ["a", "cat"], np.ones((2, 2, 2)) / 4)
    assert png_size(drawn(plot_caption_attention, [caption])[0]) == (480, 180)  # image + 2 words, 1.6 × 1.8 in

    report = {"clean_accuracy": 0.9, "epsilons": [0.0, 0.1], "fgsm_accuracy": [0.9, 0.4], "pgd_accuracy": [0.9, 0.2],
              "pgd_steps": 5, "num_examples": 10}
    path = plot_robustness(report, tmp_path / "robustness.png")
    assert png_size(path.read_bytes()) == (500, 400)
