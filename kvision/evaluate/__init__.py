"""Evaluation: metrics, reports and plots."""

from kvision.evaluate.classification import classification_report, confusion_matrix, predict_logits
from kvision.evaluate.plots import plot_confusion_matrix, plot_training_curves, read_history
from kvision.evaluate.report import evaluate_classifier, log_to_tensorboard

__all__ = [
    "classification_report",
    "confusion_matrix",
    "evaluate_classifier",
    "log_to_tensorboard",
    "plot_confusion_matrix",
    "plot_training_curves",
    "predict_logits",
    "read_history",
]
