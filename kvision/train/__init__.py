"""Training: strategy selection, the fit-based engines (classifiers, GANs, seq2seq), callbacks and schedules."""

from kvision.train.callbacks import make_callbacks, run_paths
from kvision.train.engine import TrainResult, apply_weight_decay, fit_classifier, make_optimizer
from kvision.train.schedules import make_schedule
from kvision.train.seq2seq import compile_seq2seq, fit_seq2seq
from kvision.train.strategy import get_strategy, is_chief, worker_dir

__all__ = [
    "TrainResult",
    "apply_weight_decay",
    "compile_seq2seq",
    "fit_classifier",
    "fit_seq2seq",
    "get_strategy",
    "is_chief",
    "make_callbacks",
    "make_optimizer",
    "make_schedule",
    "run_paths",
    "worker_dir",
]
