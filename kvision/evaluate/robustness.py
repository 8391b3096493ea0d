"""Adversarial robustness of a classifier: accuracy under FGSM and PGD attacks of growing ε.

ε is a fraction of the 0..255 pixel range (ε = 0.1: 25.5 grey levels), the
unit papers use for images scaled to [0, 1]; see ``kvision.train.adversarial``.
"""

import json
import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from kvision.data import make_pipeline
from kvision.data.dataset import check_labels
from kvision.evaluate.classification import accuracy
from kvision.evaluate.plots import new_figure, save_figure
from kvision.models.common import require
from kvision.train.adversarial import check_attack, fgsm, pgd


def robustness_report(model, images, labels, *, epsilons=(0.0, 0.02, 0.05, 0.1, 0.2), steps=20, batch_size=256,
                      out_dir=None, seed=0):
    """Clean accuracy and, for each ε, accuracy on FGSM and on ``steps``-step PGD examples.

    White-box L∞ attacks on the cross-entropy with the model in inference
    mode; PGD starts at a random point of the ball (the same points for
    the same ``seed``) with step ``2.5 · ε / steps``. A model that looks
    robust to FGSM but not to PGD masks its gradients rather than being
    robust (Madry et al. 2018, https://arxiv.org/abs/1706.06083).

    Args:
        model: a kvision classifier (raw 0..255 images → logits).
        images, labels: uint8 ``[N, H, W, C]`` images and integer labels.
        epsilons: attack radii, fractions of the 0..255 range.
        steps: PGD steps.
        batch_size: images attacked at once.
        out_dir: if given, ``robustness.json`` and ``robustness.png``
            (accuracy against ε) are written there.
        seed: seeds PGD's random starts.

    Returns:
        A JSON-ready dict: ``clean_accuracy``, ``epsilons`` and, aligned with
        them, ``fgsm_accuracy`` and ``pgd_accuracy``; with ``out_dir``, the
        written paths under "files".
    """
    epsilons = [float(e) for e in epsilons]
    require(len(epsilons) > 0, "robustness_report needs at least one epsilon.", epsilons=epsilons)
    for epsilon in epsilons:
        check_attack(epsilon, steps, None)
    batches = make_pipeline(images, labels, batch_size=batch_size, training=False)
    check_labels(labels, model.output_shape[-1], "robustness_report")

    @tf.function(reduce_retracing=True)
    def correct(batch_images, batch_labels, epsilon, batch_seed):
        """Correctly classified examples of the batch after FGSM and after PGD."""
        attacks = (
            fgsm(model, batch_images, batch_labels, epsilon),
            pgd(model, batch_images, batch_labels, epsilon, steps=steps, seed=batch_seed),
        )
        return [
            tf.reduce_sum(tf.cast(tf.argmax(model(x, training=False), -1) == batch_labels, tf.int64)) for x in attacks
        ]

    clean = accuracy(model, images, labels, batch_size=batch_size)
    counts = np.zeros((len(epsilons), 2), np.int64)
    # One step per image and ε. A live bar on a terminal; in a log file, one line at the end.
    progress = keras.utils.Progbar(len(epsilons) * len(images), unit_name="image",
                                   verbose=1 if sys.stdout.isatty() else 2)
    for row, epsilon in enumerate(epsilons):
        for index, (batch_images, batch_labels) in enumerate(batches):
            found = correct(batch_images, batch_labels, tf.constant(epsilon), tf.constant([seed, index]))
            counts[row] += [int(count) for count in found]
            progress.add(len(batch_labels))
    report = {
        "num_examples": int(len(images)),
        "clean_accuracy": clean,
        "epsilons": epsilons,
        "fgsm_accuracy": (counts[:, 0] / len(images)).tolist(),
        "pgd_accuracy": (counts[:, 1] / len(images)).tolist(),
        "pgd_steps": steps,
        "units": "ε as a fraction of the 0..255 pixel range; PGD step 2.5·ε/steps from a random start",
    }
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        report["files"] = {"robustness_curve": str(plot_robustness(report, out_dir / "robustness.png"))}
        (out_dir / "robustness.json").write_text(json.dumps(report, indent=2))
    return report


def plot_robustness(report, path):
    """Accuracy against ε under FGSM and PGD, with the clean accuracy for reference, saved to ``path``."""
    fig, [[ax]] = new_figure(figsize=(5, 4))
    ax.axhline(report["clean_accuracy"], color="grey", linestyle=":", label="clean")
    ax.plot(report["epsilons"], report["fgsm_accuracy"], marker="o", label="FGSM")
    ax.plot(report["epsilons"], report["pgd_accuracy"], marker="s", label=f"PGD-{report['pgd_steps']}")
    ax.set_xlabel("ε (fraction of the 0..255 range)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"Robustness ({report['num_examples']} examples)")
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, path)
