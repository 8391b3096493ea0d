"""Write an evaluation report next to a run: JSON, PNG plots and TensorBoard."""

import json
from pathlib import Path

import tensorflow as tf

from kvision.evaluate.classification import classification_report, predict_batches, predict_logits
from kvision.evaluate.plots import plot_confusion_matrix, plot_training_curves, read_history
from kvision.train.tensorboard import log_test_metrics


def evaluate_classifier(model, images, labels, class_names, out_dir, *, history_csv=None, log_dir=None):
    """Evaluate ``model`` on a labelled split and write the report under ``out_dir``.

    The split is ``images, labels`` arrays, or a ``tf.data.Dataset`` of
    ``(images, int labels)`` batches as ``images`` (a streamed split's
    ``stream_pipeline``) with ``labels=None``: evaluated batch by batch.

    Writes ``report.json``, ``confusion_matrix.png`` and, when the run's CSV
    history is given, ``training_curves.png``; with ``log_dir`` the confusion
    matrix also goes to TensorBoard as an image and the headline metrics as
    scalars. Returns the report dict (with the written paths under "files").
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if isinstance(images, tf.data.Dataset):
        logits, labels = predict_batches(model, images)
    else:
        logits = predict_logits(model, images)
    report = classification_report(logits, labels, class_names)
    files = {"confusion_matrix": plot_confusion_matrix(report["confusion_matrix"], class_names, out_dir / "confusion_matrix.png")}
    if history_csv is not None and Path(history_csv).exists():
        files["training_curves"] = plot_training_curves(read_history(history_csv), out_dir / "training_curves.png")
    if log_dir is not None:
        headline = {key: report[key] for key in ("accuracy", "top5_accuracy", "macro_f1") if key in report}
        log_test_metrics(log_dir, headline, images={"confusion_matrix": files["confusion_matrix"]})
    report["files"] = {key: str(path) for key, path in files.items()}
    (out_dir / "report.json").write_text(json.dumps(report, indent=2))
    return report
