"""PNG plots of a run: the confusion matrix, the training curves, attention heat maps.

Drawn with matplotlib's object API (``matplotlib.figure.Figure``), not
``pyplot``: no backend is chosen or switched, so importing kvision leaves a
notebook's inline plots alone, and no global figure list has to be cleared.
"""

import csv

import numpy as np
from matplotlib.figure import Figure

from kvision.train.tensorboard import confusion_figure


def new_figure(rows=1, columns=1, *, figsize):
    """A standalone ``Figure`` and its ``rows × columns`` array of axes (always 2-D)."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(rows, columns, squeeze=False)


def save_figure(fig, path):
    """Lay ``fig`` out and save it to ``path`` (a file name or a binary file object) as a 100-dpi PNG; returns ``path``."""
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")
    return path


def plot_confusion_matrix(cm, class_names, path, *, title="Confusion matrix"):
    """Row-normalised confusion matrix with counts in the cells, saved to ``path``.

    The same drawing as the per-epoch validation image in TensorBoard
    (``kvision.train.tensorboard.confusion_figure``).
    """
    return save_figure(confusion_figure(cm, class_names, title=title), path)


def _number(text):
    return float("nan") if text == "NA" else float(text)


def read_history(history_csv):
    """Columns of a Keras ``CSVLogger`` file, one row per epoch (last row wins on repeats).

    Values the logger wrote as "NA" (a metric missing that epoch) become NaN,
    which plots leave out.
    """
    with open(history_csv, newline="") as f:
        rows = {int(row["epoch"]): row for row in csv.DictReader(f)}
    epochs = sorted(rows)
    keys = [key for key in (rows[epochs[0]] if epochs else {}) if key != "epoch"]
    return {"epoch": epochs, **{key: [_number(rows[e][key]) for e in epochs] for key in keys}}


def plot_training_curves(history, path):
    """Loss, accuracy and learning rate per epoch, train vs validation, saved to ``path``."""
    panels = [name for name in ("loss", "accuracy", "learning_rate") if name in history]
    fig, axes = new_figure(1, len(panels), figsize=(5 * len(panels), 4))
    epochs = np.asarray(history["epoch"]) + 1
    for ax, name in zip(axes[0], panels):
        ax.plot(epochs, history[name], label="train")
        if f"val_{name}" in history:
            ax.plot(epochs, history[f"val_{name}"], label="validation")
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend()
    return save_figure(fig, path)


def plot_attention(examples, path, *, columns=2):
    """Attention heat maps, one panel per ``(weights [T, S], source tokens, output tokens)``, saved to ``path``.

    Row ``t`` shows where the decoder looked while producing output token ``t``.
    """
    rows = -(-len(examples) // columns)
    fig, axes = new_figure(rows, columns, figsize=(5 * columns, 4 * rows))
    for ax in axes.flat[len(examples):]:
        ax.axis("off")
    for ax, (weights, source, output) in zip(axes.flat, examples):
        ax.imshow(np.asarray(weights), cmap="viridis", vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(np.arange(len(source)), source, rotation=90 if max(map(len, source), default=1) > 2 else 0)
        ax.set_yticks(np.arange(len(output)), output)
        ax.set_xlabel("source")
        ax.set_ylabel("output")
    return save_figure(fig, path)


def plot_caption_attention(examples, path, *, max_words=12):
    """One row per ``(image [H, W, C], words, weights [T, h, w])``: the image, then where the decoder looked for each word.

    Each word's ``h × w`` attention map is stretched over the image (nearest
    neighbour, so the feature map's cells stay visible) at 60% opacity.
    """
    columns = 1 + min(max_words, max(len(words) for _, words, _ in examples))
    fig, axes = new_figure(len(examples), columns, figsize=(1.6 * columns, 1.8 * len(examples)))
    for row, (image, words, weights) in zip(axes, examples):
        image = np.asarray(image, np.float32)[..., :3] / 255.0
        gray = image.shape[-1] == 1
        shown = image[..., 0] if gray else image
        extent = (0, image.shape[1], image.shape[0], 0)
        for ax in row:
            ax.axis("off")
        row[0].imshow(shown, cmap="gray" if gray else None, vmin=0, vmax=1)
        row[0].set_title("image", fontsize=8)
        for ax, word, weight in zip(row[1:], words, weights):
            ax.imshow(shown, cmap="gray" if gray else None, vmin=0, vmax=1, extent=extent)
            ax.imshow(weight, cmap="inferno", alpha=0.6, extent=extent, interpolation="nearest")
            ax.set_title(word, fontsize=8)
    return save_figure(fig, path)
