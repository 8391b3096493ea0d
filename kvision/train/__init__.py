"""Training: strategy selection, the fit-based engines (classifiers, GANs, seq2seq, captioning), callbacks and schedules."""

from kvision.train.adversarial import AdversarialTraining, fgsm, pgd
from kvision.train.callbacks import make_callbacks, run_paths
from kvision.train.captioning import fit_captioner
from kvision.train.distill import Distiller, load_teacher
from kvision.train.engine import (
    TrainResult,
    apply_weight_decay,
    compile_run,
    fit_classifier,
    fit_or_load,
    make_optimizer,
    result_checkpoint,
)
from kvision.train.finetune import backbone_stages, fine_tune, load_backbone, set_trainable, with_new_head
from kvision.train.prune import MagnitudePruning, model_sizes, sparsity
from kvision.train.schedules import epoch_budget, make_schedule
from kvision.train.seq2seq import compile_seq2seq, fit_seq2seq, fit_teacher_forced
from kvision.train.simclr import SimCLR, fit_simclr, linear_probe, nt_xent_loss
from kvision.train.strategy import get_strategy, is_chief, worker_dir
from kvision.train.tensorboard import log_test_metrics

__all__ = [
    "AdversarialTraining",
    "Distiller",
    "MagnitudePruning",
    "SimCLR",
    "TrainResult",
    "apply_weight_decay",
    "backbone_stages",
    "compile_run",
    "compile_seq2seq",
    "epoch_budget",
    "fgsm",
    "fine_tune",
    "fit_captioner",
    "fit_classifier",
    "fit_or_load",
    "fit_seq2seq",
    "fit_simclr",
    "fit_teacher_forced",
    "get_strategy",
    "is_chief",
    "linear_probe",
    "load_backbone",
    "load_teacher",
    "log_test_metrics",
    "make_callbacks",
    "make_optimizer",
    "make_schedule",
    "model_sizes",
    "nt_xent_loss",
    "pgd",
    "result_checkpoint",
    "run_paths",
    "set_trainable",
    "sparsity",
    "with_new_head",
    "worker_dir",
]
