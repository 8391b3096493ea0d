"""Evaluation: metrics, reports and plots."""

from kvision.evaluate.classification import accuracy, classification_report, confusion_matrix, predict_logits
from kvision.evaluate.plots import plot_attention, plot_confusion_matrix, plot_training_curves, read_history
from kvision.evaluate.report import evaluate_classifier
from kvision.evaluate.robustness import plot_robustness, robustness_report
from kvision.evaluate.seq2seq import corpus_bleu, evaluate_seq2seq, sequence_error_rates

__all__ = [
    "accuracy",
    "classification_report",
    "confusion_matrix",
    "corpus_bleu",
    "evaluate_classifier",
    "evaluate_seq2seq",
    "plot_attention",
    "plot_confusion_matrix",
    "plot_robustness",
    "plot_training_curves",
    "predict_logits",
    "read_history",
    "robustness_report",
    "sequence_error_rates",
]
