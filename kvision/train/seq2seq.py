"""Training sequence-to-sequence models (and captioners) with teacher forcing, through ``fit``.

The same run directory, callbacks and resume behaviour as the classifier
engine; the loss is the cross-entropy of each next target token, averaged
over real (unpadded) target tokens, and ``token_accuracy`` is measured on
those tokens only.
"""

from pathlib import Path

import keras

from kvision.data.text import text_pipeline
from kvision.train.engine import build_with_policy, compile_run, finished_checkpoint, fit_run, run_result
from kvision.train.strategy import get_strategy


def seq2seq_objective():
    """Teacher forcing's ``compile`` arguments: token cross-entropy and token accuracy, padding excluded.

    Padding is excluded through the per-token sample weights of ``text_pipeline``.
    """
    return dict(
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="token_accuracy")],
    )


def compile_seq2seq(model, optimizer, *, jit_compile=False):
    """Compile ``model`` for teacher forcing with ``optimizer`` (see ``seq2seq_objective``)."""
    model.compile(optimizer=optimizer, jit_compile=jit_compile, **seq2seq_objective())


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
    strategy=None,
    callbacks=(),
    verbose=None,
):
    """Train a token decoder (seq2seq model or captioner) with teacher forcing on ready pipelines.

    Adam with a linear warm-up and cosine decay of the learning rate and
    gradient-norm clipping. A run killed part-way resumes from the last
    finished epoch when called again with the same ``run_dir``; the returned
    model holds the weights of the epoch with the best validation token
    accuracy. A run that already finished ``epochs`` epochs is not trained
    again: its best checkpoint is loaded, so re-running a recipe re-evaluates
    and re-exports.

    Args:
        model_fn: zero-argument callable returning an uncompiled model, called in the strategy scope.
        train_ds, val_ds: ``(inputs, target_out, weights)`` batches (``text_pipeline``, ``caption_pipeline``).
        steps_per_epoch: batches in ``train_ds``.
        warmup_epochs: linear learning-rate warm-up (at most half of training).
        mixed_precision: build under ``mixed_float16`` (float32 logits; Keras
            wraps the optimizer in dynamic loss scaling).
        xla: compile the train step with XLA (``jit_compile``).
    """
    run_dir = Path(run_dir)
    strategy = strategy or get_strategy()
    with strategy.scope():
        model = build_with_policy(model_fn, mixed_precision)
        compile_run(
            model, steps_per_epoch=steps_per_epoch, epochs=epochs, optimizer="adam", learning_rate=learning_rate,
            warmup_epochs=min(warmup_epochs, epochs / 2), clipnorm=clipnorm, xla=xla, **seq2seq_objective(),
        )
    checkpoint = finished_checkpoint(run_dir, epochs)
    if checkpoint is not None:
        with strategy.scope():
            model.optimizer.build(model.trainable_variables)  # so the checkpoint's optimizer state loads too
        model.load_weights(checkpoint)
        return run_result(model, {}, run_dir, strategy)
    return fit_run(
        model, train_ds, val_ds, run_dir=run_dir, epochs=epochs, monitor="val_token_accuracy",
        strategy=strategy, callbacks=callbacks, verbose=verbose,
    )
