"""Training sequence-to-sequence models (and captioners) with teacher forcing, through ``fit``.

The same run directory, callbacks and resume behaviour as the classifier
engine; the loss is the cross-entropy of each next target token (optionally
label-smoothed), summed over real (unpadded) target tokens and divided by
the batch's padded target positions (Keras' ``sum_over_batch_size``), and
``token_accuracy`` is measured on real tokens only.
"""

from pathlib import Path

import keras
import numpy as np
from keras import ops

from kvision.data.text import NEVER_GENERATED, text_pipeline
from kvision.errors import ModelError
from kvision.train.callbacks import finished_epochs, run_paths
from kvision.train.engine import (
    average_epoch_weights,
    build_with_policy,
    compile_run,
    finished_checkpoint,
    fit_run,
    run_result,
)
from kvision.train.strategy import get_strategy


@keras.saving.register_keras_serializable(package="kvision")
class TokenCrossentropy(keras.losses.Loss):
    """Next-token cross-entropy of logits, with labels smoothed over the tokens a decoder can emit.

    The target of a position whose label is ``y`` is ``(1 − ε)·onehot(y) +
    ε/K`` on each of the ``K`` tokens a decoder may produce (all but
    ``NEVER_GENERATED``: ``[PAD]``, ``[START]``), so no probability is taught
    for a token that is never an answer (label smoothing, Szegedy et al. 2016,
    https://arxiv.org/abs/1512.00567; ε = 0.1 in Vaswani et al. 2017). With
    ε = 0 it is ``SparseCategoricalCrossentropy(from_logits=True)``. Padding
    positions get zero per-token sample weights (``text_pipeline``), so they
    add nothing.
    """

    def __init__(self, label_smoothing=0.0, name="token_crossentropy", **kwargs):
        if not 0 <= label_smoothing < 1:
            raise ModelError(f"label_smoothing must be in [0, 1). Received: label_smoothing={label_smoothing!r}")
        super().__init__(name=name, **kwargs)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        # y_true int[B, T] token ids, y_pred float[B, T, V] logits → float[B, T] loss per position.
        nll = keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)
        if not self.label_smoothing:
            return nll
        vocab_size = y_pred.shape[-1]
        emitted = ~np.isin(np.arange(vocab_size), NEVER_GENERATED)
        uniform = ops.convert_to_tensor(emitted / emitted.sum(), "float32")  # (V,) 1/K on the K emitted tokens
        log_probs = ops.log_softmax(ops.cast(y_pred, "float32"), axis=-1)  # (B, T, V)
        smoothed = -ops.sum(log_probs * uniform, axis=-1)  # (B, T) cross-entropy with the uniform part
        return (1 - self.label_smoothing) * nll + self.label_smoothing * smoothed

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


def check_teacher_forcing(*, epochs, label_smoothing=0.0, average_last=0):
    """Raise ``ModelError`` for a ``label_smoothing`` outside [0, 1) or an ``average_last`` outside 0 … ``epochs``.

    ``fit_teacher_forced`` calls it first; a recipe calls it before it writes anything.
    """
    TokenCrossentropy(label_smoothing)  # refuses a bad ε
    if not (isinstance(average_last, int) and 0 <= average_last <= epochs):
        raise ModelError(f"average_last must be an integer from 0 to epochs={epochs}. Received: average_last={average_last!r}")


def seq2seq_objective(label_smoothing=0.0):
    """Teacher forcing's ``compile`` arguments: token cross-entropy and token accuracy, padding excluded.

    Padding is excluded through the per-token sample weights of
    ``text_pipeline``; ``label_smoothing`` as for ``TokenCrossentropy``.
    """
    return dict(
        loss=TokenCrossentropy(label_smoothing),
        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="token_accuracy")],
    )


def compile_seq2seq(model, optimizer, *, label_smoothing=0.0, jit_compile=False):
    """Compile ``model`` for teacher forcing with ``optimizer`` (see ``seq2seq_objective``)."""
    model.compile(optimizer=optimizer, jit_compile=jit_compile, **seq2seq_objective(label_smoothing))


def fit_seq2seq(model_fn, train_pairs, validation_pairs, source_vocab, target_vocab, *, batch_size=128, seed=None,
                strategy=None, **options):
    """Train the model ``model_fn()`` builds on ``(source, target)`` string pairs (see ``fit_teacher_forced``).

    Args:
        model_fn: zero-argument callable returning an uncompiled seq2seq model
            (``kvision.models.build_rnn_seq2seq`` …), called in the strategy scope.
        train_pairs, validation_pairs: lists of ``(source, target)`` strings.
        source_vocab, target_vocab: ``kvision.data.text`` vocabularies.
        batch_size: global batch size.
    """
    strategy = strategy or get_strategy()  # before any op: a multi-worker strategy must exist first
    if seed is not None:
        keras.utils.set_random_seed(seed)
    train_ds, steps_per_epoch = text_pipeline(
        train_pairs, source_vocab, target_vocab, batch_size=batch_size, training=True, seed=seed
    )
    val_ds, _ = text_pipeline(validation_pairs, source_vocab, target_vocab, batch_size=batch_size, training=False)
    return fit_teacher_forced(model_fn, train_ds, val_ds, steps_per_epoch=steps_per_epoch, strategy=strategy, **options)


def fit_teacher_forced(
    model_fn,
    train_ds,
    val_ds,
    *,
    steps_per_epoch,
    run_dir,
    epochs=30,
    learning_rate=2e-3,
    warmup_epochs=1,
    clipnorm=1.0,
    mixed_precision=False,
    xla=False,
    label_smoothing=0.0,
    average_last=0,
    strategy=None,
    callbacks=(),
    verbose=None,
    hparams=None,
    profile_batches=None,
):
    """Train a token decoder (seq2seq model or captioner) with teacher forcing on ready pipelines.

    Adam with a linear warm-up and cosine decay of the learning rate and
    gradient-norm clipping. A run killed part-way resumes from the last
    finished epoch when called again with the same ``run_dir``; the returned
    model holds the weights of the epoch with the best validation token
    accuracy, or with ``average_last`` the mean of the last epochs' weights.
    A run that already finished ``epochs`` epochs is not trained again: its
    weights are loaded (and averaged again), so re-running a recipe
    re-evaluates and re-exports.

    Args:
        model_fn: zero-argument callable returning an uncompiled model, called in the strategy scope.
        train_ds, val_ds: ``(inputs, target_out, weights)`` batches (``text_pipeline``, ``caption_pipeline``).
        steps_per_epoch: batches in ``train_ds``.
        warmup_epochs: linear learning-rate warm-up (at most half of training).
        mixed_precision: build under a mixed policy (``engine.dtype_policy``;
            float32 logits).
        xla: compile the train step with XLA (``jit_compile``).
        label_smoothing: ε of the loss (``TokenCrossentropy``).
        average_last: average the weights of the last this many epochs into
            the returned model (checkpoint averaging, as in Vaswani et al. 2017
            and fairseq's ``average_checkpoints.py``); 0: the best epoch's.
        hparams, profile_batches: the run's settings for TensorBoard's HParams
            dashboard, batches to profile (see ``kvision.train.make_callbacks``).
    """
    check_teacher_forcing(epochs=epochs, label_smoothing=label_smoothing, average_last=average_last)
    run_dir = Path(run_dir)
    strategy = strategy or get_strategy()
    with strategy.scope():
        model = build_with_policy(model_fn, mixed_precision)
        compile_run(
            model, steps_per_epoch=steps_per_epoch, epochs=epochs, optimizer="adam", learning_rate=learning_rate,
            warmup_epochs=min(warmup_epochs, epochs / 2), clipnorm=clipnorm, xla=xla,
            **seq2seq_objective(label_smoothing),
        )
    checkpoint = finished_checkpoint(run_dir, epochs)
    if checkpoint is not None:
        model.load_weights(checkpoint)
        averaged = ()
        if average_last:
            averaged = average_epoch_weights(model, run_paths(run_dir)["epochs"], last=average_last,
                                             through=finished_epochs(run_dir))
        return run_result(model, {}, run_dir, strategy, averaged)
    return fit_run(
        model, train_ds, val_ds, run_dir=run_dir, epochs=epochs, monitor="val_token_accuracy",
        strategy=strategy, average_last=average_last, callbacks=callbacks, verbose=verbose, hparams=hparams,
        profile_batches=profile_batches,
    )
