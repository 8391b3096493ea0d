"""The training engine: one ``fit``-based entry point every recipe uses.

It chooses the strategy, builds the model, optimizer and metrics inside
``strategy.scope()``, feeds ``tf.data`` pipelines of the global batch, and
attaches the callbacks that make a run observable (TensorBoard: scalars, the
train step's graph, HParams, a classifier's confusion matrices, PR curves
and augmented samples, the profiler on request), recoverable
(``BackupAndRestore``) and reusable (best and last ``.keras`` checkpoints).
"""

import contextlib
import dataclasses
import functools
import sys
import warnings
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from kvision.data import make_pipeline
from kvision.data.decode import ImageLimits
from kvision.data.service import distribute
from kvision.data.stream import CROP_SCALE, StreamSplit, stream_pipeline
from kvision.data.stream_checks import naming_bad_images
from kvision.errors import DataError, ModelError
from kvision.train.callbacks import epoch_weights_path, finished_epochs, make_callbacks, run_paths
from kvision.train.schedules import make_schedule
from kvision.train.strategy import get_strategy, global_batch_size, worker_dir
from kvision.train.tensorboard import FIGURE_EXAMPLES, classifier_callbacks, classifier_inputs, parse_profile_batches

OPTIMIZERS = ("sgd", "adam", "adamw")


@dataclasses.dataclass
class TrainResult:
    """What ``fit_classifier`` hands back: the trained network and where its run lives.

    ``averaged_epochs``: the epochs (from 1) whose weights were averaged into
    ``model``; empty when it holds one epoch's weights.
    """

    model: keras.Model
    history: dict
    run_dir: Path
    strategy: object
    best_checkpoint: Path | None
    averaged_epochs: tuple = ()


def make_optimizer(name, learning_rate, *, momentum=0.9, weight_decay=0.0, clipnorm=None):
    """SGD with (Nesterov-free) momentum, Adam, or AdamW.

    For "adamw" ``weight_decay`` is decoupled (Loshchilov & Hutter); for "sgd"
    and "adam" it is the classic L2 penalty added by ``apply_weight_decay``.
    """
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=momentum, clipnorm=clipnorm)
    if name == "adam":
        return keras.optimizers.Adam(learning_rate, clipnorm=clipnorm)
    if name == "adamw":
        return keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay, clipnorm=clipnorm)
    raise ModelError(f"Unknown optimizer. Expected one of {OPTIMIZERS}. Received: {name!r}")


def apply_weight_decay(model, weight_decay):
    """Add the L2 penalty ``weight_decay/2 · ||W||²`` on every conv and dense kernel.

    The gradient of that penalty is ``weight_decay · W``, the "weight decay
    1e-4" of He et al. Biases and BatchNorm parameters are not decayed.
    """
    regularizer = keras.regularizers.L2(weight_decay / 2)
    for layer in model._flatten_layers(include_self=False):
        kernel = getattr(layer, "kernel", None)
        if kernel is not None and kernel.trainable:
            kernel.regularizer = regularizer


MIXED_PRECISION = ("float16", "bfloat16")


def dtype_policy(mixed_precision):
    """The Keras dtype policy of a ``mixed_precision`` setting.

    False/None: ``float32``; True or ``"float16"``: ``mixed_float16`` (GPUs;
    Keras adds dynamic loss scaling); ``"bfloat16"``: ``mixed_bfloat16``
    (CPUs with AMX or AVX512-BF16, TPUs; no loss scaling needed).
    """
    if not mixed_precision:
        return "float32"
    compute = "float16" if mixed_precision is True else mixed_precision
    if compute not in MIXED_PRECISION:
        raise ModelError(f"Expected mixed_precision to be one of {MIXED_PRECISION}, True or False. "
                         f"Received: {mixed_precision!r}")
    return f"mixed_{compute}"


def build_with_policy(model_fn, mixed_precision):
    """``model_fn()`` built under ``mixed_precision``'s policy (``dtype_policy``); the global policy is restored after.

    Layers keep the policy they were built with, so the model trains in mixed
    precision without leaking the setting into whatever the process builds next.
    """
    policy = dtype_policy(mixed_precision)
    previous = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy(policy)
    try:
        return model_fn()
    finally:
        keras.mixed_precision.set_dtype_policy(previous)


def with_policy(model, policy):
    """``model``, or a copy of it whose layers compute under dtype ``policy``, with the same weights.

    Mixed-precision layers keep float32 variables, so the copy's weights are
    exact; ``load_model`` restores each layer's saved policy, which this
    overrides (a float32 checkpoint fine-tuned in mixed precision, a mixed
    network served in float32).
    """
    policy = keras.dtype_policies.get(policy)
    if all(layer.dtype_policy.name == policy.name for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)):
        return model
    copy = keras.models.clone_model(
        model, clone_function=lambda layer: layer.__class__.from_config({**layer.get_config(), "dtype": policy})
    )
    copy.set_weights(model.get_weights())
    return copy


def float32_twin(network):
    """``network`` computing in float32 (``with_policy``): what is evaluated and served after mixed precision.

    Its graph computes in float32, which every serving target (TF Serving on
    any CPU, TFLite) runs at full speed.
    """
    return with_policy(network, "float32")


def compile_run(model, *, steps_per_epoch, epochs, optimizer="sgd", learning_rate=0.1, momentum=0.9,
                weight_decay=0.0, schedule="cosine", warmup_epochs=0, boundaries=(0.5, 0.75), clipnorm=None,
                xla=False, steps_per_execution=1, **compile_args):
    """Compile ``model`` with a run's optimizer, learning-rate schedule and weight decay.

    Call it in the strategy scope. The one place every trainer (classifier,
    SimCLR, seq2seq) turns its settings into a compiled model, so they all
    mean the same thing: ``weight_decay`` decoupled for "adamw", else the L2
    penalty of ``apply_weight_decay`` on the model's trainable kernels;
    ``compile_args`` (loss, metrics …) go to ``model.compile``.
    """
    apply_weight_decay(model, 0.0 if optimizer == "adamw" else weight_decay)
    lr = make_schedule(schedule, learning_rate, steps_per_epoch=steps_per_epoch, epochs=epochs,
                       warmup_epochs=warmup_epochs, boundaries=boundaries)
    model.compile(
        optimizer=make_optimizer(optimizer, lr, momentum=momentum, weight_decay=weight_decay, clipnorm=clipnorm),
        jit_compile=xla, steps_per_execution=steps_per_execution, **compile_args,
    )
    # The optimizer's slots now, not in the first train step: variables made while tracing make
    # tf.function trace the whole step a second time. A resumed run's checkpoint needs them too.
    model.optimizer.build(model.trainable_variables)


def fit_classifier(
    model_fn,
    train,
    validation=None,
    *,
    run_dir,
    epochs=30,
    batch_size=128,
    optimizer="sgd",
    learning_rate=0.1,
    momentum=0.9,
    weight_decay=1e-4,
    schedule="cosine",
    warmup_epochs=0,
    boundaries=(0.5, 0.75),
    label_smoothing=0.0,
    crop_padding=4,
    flip=True,
    cutout=0,
    random_erasing=0.0,
    crop="pad",
    crop_scale=CROP_SCALE,
    skip_bad_images=False,
    image_limits=ImageLimits(),
    data_service=None,
    seed=None,
    mixed_precision=False,
    xla=False,
    steps_per_execution=1,
    early_stopping_patience=None,
    restore_best=True,
    strategy=None,
    wrap=None,
    callbacks=(),
    verbose=None,
    hparams=None,
    class_names=None,
    profile_batches=None,
    figure_examples=FIGURE_EXAMPLES,
):
    """Train the classifier that ``model_fn()`` builds on ``train``: ``(images, labels)`` arrays or a stream.

    A streamed split (``StreamSplit``) is read, decoded and augmented inside
    ``tf.data`` at the model's input shape; an epoch is ``count // global
    batch`` steps of a repeated stream, and under a multi-replica strategy
    each input pipeline reads its own part of the files
    (``distribute_datasets_from_function``). An image that fails to decode
    stops the run with a ``DataError`` naming its file, unless
    ``skip_bad_images``. The model's ``Normalization`` statistics are the
    caller's (``model_fn``): for a stream, ``sample_channel_stats`` computes
    them from a bounded sample of its first images.

    ``batch_size`` is per replica; the global batch is ``batch_size ×
    num_replicas``. A run killed part-way resumes from the last finished epoch
    when called again with the same ``run_dir``. With ``validation`` given and
    ``restore_best``, the returned model holds the weights of the epoch with
    the best validation accuracy.

    Args:
        model_fn: zero-argument callable returning an uncompiled
            ``keras.Model`` with logits outputs; called inside the strategy
            scope (and after the mixed-precision policy is set).
        train, validation: ``(uint8 images NHWC, int labels)`` arrays, or
            ``StreamSplit``s of a ``StreamedDataset``.
        run_dir: where TensorBoard logs, checkpoints and the backup go.
        label_smoothing: smoothing of the one-hot targets.
        crop_padding, flip, cutout, random_erasing: training augmentation
            (see ``kvision.data.make_pipeline``).
        crop, crop_scale, skip_bad_images, image_limits: for streams, see
            ``kvision.data.stream.stream_pipeline`` ("inception" crops need a
            stream).
        data_service: ``grpc://HOST:PORT`` of a tf.data service dispatcher
            that runs the training stream's reading, decoding and
            augmentation (``kvision.data.service``); streams only.
        mixed_precision: train under a mixed policy (``dtype_policy``):
            True or ``"float16"`` (with dynamic loss scaling), ``"bfloat16"``;
            ``float32_twin`` gives the trained network back in float32.
        xla: compile the train step with XLA (``jit_compile``).
        wrap: ``network -> keras.Model`` training it with a custom
            ``train_step`` (``AdversarialTraining``, ``Distiller``); the
            wrapper exposes the network as ``.network``, which is what the
            checkpoints hold and the result returns. Built under the run's
            strategy and precision policy.
        callbacks: extra Keras callbacks, run after the engine's own.
        verbose: Keras' ``fit`` verbosity; default: a progress bar on a
            terminal, one line per epoch when the output goes to a file.
        hparams: the run's settings (a recipe's resolved flags), shown in
            TensorBoard's HParams dashboard beside the run's final metrics;
            None: no HParams session.
        class_names: names of the classes, for the confusion matrices, PR
            curves and sample images; default: their numbers.
        profile_batches: training batches to profile, ``"A,B"`` or ``(A, B)``
            counted from 1 (``kvision.train.tensorboard.parse_profile_batches``);
            None: no profiling.
        figure_examples: validation examples predicted at each epoch end for
            TensorBoard's confusion matrix (and, after the last, the PR
            curves): a random sample bounding the cost; 0: no such figures.

    TensorBoard (``run_dir/logs``) shows, besides the epoch scalars, the
    train step's op graph, the settings as HParams, 16 augmented training
    images when training starts, the validation confusion matrix each epoch
    and per-class PR curves after the last (``kvision.train.tensorboard``).
    """
    parse_profile_batches(profile_batches)  # a bad range fails before any work
    run_dir = Path(run_dir)
    strategy = strategy or get_strategy()
    streamed = isinstance(train, StreamSplit)
    check_stream_options(streamed, crop, data_service)
    count = train.count if streamed else len(train[0])
    global_batch = global_batch_size(strategy, batch_size, count)
    steps_per_epoch = count // global_batch
    if seed is not None:
        keras.utils.set_random_seed(seed)

    with strategy.scope():
        model = build_with_policy(lambda: (wrap or (lambda network: network))(model_fn()), mixed_precision)
        num_classes = getattr(model, "network", model).output_shape[-1]
        compile_run(
            model,
            steps_per_epoch=steps_per_epoch, epochs=epochs, optimizer=optimizer, learning_rate=learning_rate,
            momentum=momentum, weight_decay=weight_decay, schedule=schedule, warmup_epochs=warmup_epochs,
            boundaries=boundaries, xla=xla, steps_per_execution=steps_per_execution,
            loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=label_smoothing),
            metrics=[
                keras.metrics.CategoricalAccuracy(name="accuracy"),
                keras.metrics.TopKCategoricalAccuracy(k=min(5, num_classes), name="top5_accuracy"),
            ],
        )

    guard = contextlib.nullcontext()
    augmentation = dict(crop_padding=crop_padding, flip=flip, cutout=cutout, random_erasing=random_erasing)
    if streamed:
        network = getattr(model, "network", model)
        if not skip_bad_images:
            splits = [split for split in (train, validation) if split is not None]
            guard = naming_bad_images(splits, network.input_shape[-1], image_limits)
        augmentation.update(image_shape=tuple(network.input_shape[1:]), crop=crop, crop_scale=crop_scale,
                            limits=image_limits, skip_bad_images=skip_bad_images)
        train_ds, val_ds = stream_inputs(strategy, train, validation, global_batch=global_batch,
                                         data_service=data_service, num_classes=num_classes, seed=seed, **augmentation)
    else:
        pipeline = dict(batch_size=global_batch, num_classes=num_classes, seed=seed)
        train_ds = make_pipeline(*train, training=True, **augmentation, **pipeline)
        val_ds = make_pipeline(*validation, training=False, **pipeline) if validation else None
    # The same augmentation on a few training images (what the model sees) and a validation sample, for TensorBoard.
    preview, sample = classifier_inputs(train, validation, batch_size=batch_size, max_examples=figure_examples,
                                        seed=seed or 0, **augmentation)
    board = functools.partial(classifier_callbacks, preview=preview, validation=sample, class_names=class_names,
                              max_examples=figure_examples)
    with guard, warnings.catch_warnings():
        # A one-pass validation stream may not know its length (skipped images, shards): Keras warns at its end.
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        return fit_run(
            model, train_ds, val_ds, run_dir=run_dir, epochs=epochs,
            monitor="val_accuracy" if val_ds is not None else "accuracy",
            early_stopping_patience=early_stopping_patience, restore_best=restore_best,
            strategy=strategy, callbacks=callbacks, verbose=verbose,
            steps_per_epoch=steps_per_epoch if streamed else None,
            hparams=hparams, profile_batches=profile_batches, board=board,
        )


def check_stream_options(streamed, crop, data_service):
    """``DataError`` when arrays come with an option only a streamed split has (Inception crops, a tf.data service)."""
    if (crop != "pad" or data_service) and not streamed:
        option = f"crop={crop!r}" if crop != "pad" else f"data_service={data_service!r}"
        raise DataError(f"Expected a streamed training split for {option}. Received: arrays")


def stream_inputs(strategy, train, validation, *, global_batch, data_service=None, transform=None, **pipeline):
    """``fit``'s training input (repeated) and validation input (one pass, or None) of streamed splits.

    Under a multi-replica strategy each input pipeline (one per worker)
    reads its own part of the files in batches of the per-replica size, so
    no worker reads what another trains on. With ``data_service``, the
    training input is produced by that tf.data service. ``transform`` maps
    each pipeline's dataset of batches before it is repeated (SimCLR's two
    views of each batch), so it runs per pipeline and on the service too.
    ``pipeline``: ``stream_pipeline``'s options.
    """
    def make(split, training):
        def per_pipeline(context=None):
            batch = global_batch if context is None else context.get_per_replica_batch_size(global_batch)
            dataset = stream_pipeline(split, batch_size=batch, training=training, input_context=context, **pipeline)
            if transform is not None:
                dataset = transform(dataset)
            if not training:
                return dataset
            dataset = dataset.repeat()
            return distribute(dataset, data_service).prefetch(tf.data.AUTOTUNE) if data_service else dataset

        if strategy.num_replicas_in_sync == 1:
            return per_pipeline()
        return strategy.distribute_datasets_from_function(per_pipeline)

    return make(train, True), None if validation is None else make(validation, False)


def fit_run(model, train_ds, val_ds, *, run_dir, epochs, monitor, strategy, mode="max",
            early_stopping_patience=None, restore_best=True, average_last=0, callbacks=(), verbose=None,
            steps_per_epoch=None, hparams=None, profile_batches=None, board=None):
    """``model.fit`` with the run directory's callbacks; with ``val_ds`` and ``restore_best``, the best weights after.

    ``steps_per_epoch`` for a repeated ``train_ds``. ``hparams`` and
    ``profile_batches``: see ``make_callbacks``; ``board``: ``logs folder ->
    [callbacks]`` writing an engine's own summaries (``classifier_callbacks``),
    run after the engine's callbacks and before ``callbacks``. With ``average_last``,
    the weights of that many last epochs are kept and their mean is the
    result instead (``average_epoch_weights``).
    For a training wrapper (a model with a ``.network``) the checkpoints and
    the result are that network. On a non-chief worker the files go to a
    scratch directory, removed once this worker has restored its (identical)
    best or averaged weights from it.
    """
    network = getattr(model, "network", model)
    averaged = ()
    if steps_per_epoch is None:
        train_ds, steps_per_epoch = repeat_epochs(train_ds, strategy)
    with worker_dir(run_dir) as out_dir:
        run_callbacks, best_path = make_callbacks(
            run_dir, out_dir, monitor=monitor, mode=mode, early_stopping_patience=early_stopping_patience,
            keep_epochs=average_last, input_spec=train_ds.element_spec, hparams=hparams,
            profile_batches=profile_batches,
        )
        board_callbacks = board(run_paths(out_dir)["logs"]) if board is not None else []
        history = model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            callbacks=[*run_callbacks, *board_callbacks, *callbacks],
            verbose=(1 if sys.stdout.isatty() else 2) if verbose is None else verbose,
            shuffle=False,  # the tf.data pipelines shuffle; Keras would only warn that it cannot
        )
        if average_last:
            averaged = average_epoch_weights(network, run_paths(out_dir)["epochs"], last=average_last,
                                             through=finished_epochs(out_dir))
        elif restore_best and val_ds is not None and best_path.exists():
            network.load_weights(best_path)
    return run_result(network, history.history, run_dir, strategy, averaged)


def repeat_epochs(dataset, strategy):
    """``(dataset, steps_per_epoch)`` that let ``fit`` keep one iterator for the whole run.

    Over a dataset that runs out, Keras makes a new iterator every epoch, and
    freeing the spent one can block ``fit`` for ~20 s, the machine idle, while
    it waits for a background thread of the input pipeline (``py-spy``: the
    main thread in ``~IteratorResource``; in 3 of the main job's 8 epochs). So
    a finite ``tf.data.Dataset`` is repeated and its length becomes
    ``steps_per_epoch``: the same epochs (each pass reshuffled and
    re-augmented), and the next epoch's batches prefetched during validation.

    Left as it is: anything but a dataset of known length, and any dataset
    under a ``tf.distribute`` strategy other than the default: there Keras
    first peeks one batch through an iterator of its own, whose prefetching
    could reach into a short epoch's successor and draw that epoch's shuffle
    and augmentation seeds, racing the training iterator for them.
    """
    steps = int(dataset.cardinality()) if isinstance(dataset, tf.data.Dataset) else -1
    if steps <= 0 or strategy is not tf.distribute.get_strategy():  # infinite, unknown or empty; a peeking strategy
        return dataset, None
    return dataset.repeat(), steps


def run_result(network, history, run_dir, strategy, averaged_epochs=()):
    """The ``TrainResult`` of a run in ``run_dir``, with its best checkpoint if it has one."""
    best_path = run_paths(run_dir)["best"]
    return TrainResult(network, history, Path(run_dir), strategy, best_path if best_path.exists() else None,
                       tuple(averaged_epochs))


def average_epoch_weights(network, folder, *, last, through):
    """Set ``network``'s weights to their mean over epochs ``through - last + 1 … through``; returns those epochs.

    Checkpoint averaging (Vaswani et al. 2017, https://arxiv.org/abs/1706.03762;
    fairseq's ``average_checkpoints.py``): each weight becomes the arithmetic
    mean of its values at the end of those epochs, read from the files
    ``EpochWeights`` keeps in ``folder``. Epochs count from 1; ``through`` is
    the last epoch trained.
    """
    epochs = tuple(range(through - last + 1, through + 1))
    paths = [epoch_weights_path(folder, epoch) for epoch in epochs]
    missing = [path.name for path in paths if not path.exists()]
    if epochs[0] < 1 or missing:
        found = f"{through} epochs trained" if epochs[0] < 1 else f"missing {', '.join(missing)}"
        raise ModelError(
            f"Averaging the last {last} epochs needs the weights of epochs {epochs[0]} to {through} in {folder}. "
            f"Received: {found}"
        )
    snapshots = []
    for path in paths:
        network.load_weights(path)
        snapshots.append(network.get_weights())
    network.set_weights([np.mean(values, axis=0, dtype=np.float64).astype(values[0].dtype) for values in zip(*snapshots)])
    print(f"weights: the mean of epochs {epochs[0]} to {epochs[-1]} ({folder})")
    return epochs


def result_checkpoint(run_dir, restored_best):
    """The checkpoint holding what a run returned: best when it ``restored_best``, else last."""
    return run_paths(run_dir)["best" if restored_best else "last"]


def finished_checkpoint(run_dir, epochs, *, restored_best=True, early_stopping=False, checkpoint=None):
    """The checkpoint of a finished training in ``run_dir``, to load instead of training again; else None.

    A run is finished when its ``fit`` ended (its ``finished.json``, written
    before the backup is removed) after ``epochs`` epochs, or fewer with
    early stopping. Its checkpoint holds what the training returned
    (``result_checkpoint``, or ``checkpoint`` when given); None too when that
    file is missing. Says on stdout when a finished run is found, so a re-run
    after a failed evaluation or export shows that it did not train again.
    """
    completed = finished_epochs(run_dir)
    if completed < epochs and not (early_stopping and completed):
        return None
    checkpoint = checkpoint or result_checkpoint(run_dir, restored_best)
    if not checkpoint.exists():
        return None
    print(f"{run_dir}: training finished earlier ({completed} epochs); loading {checkpoint.name}")
    return checkpoint


def fit_or_load(model_fn, train, validation=None, *, run_dir, epochs, **fit_options):
    """``fit_classifier``, unless ``run_dir`` holds a finished run: then its trained network, loaded.

    The network comes back as ``fit_classifier`` returned it: the best
    checkpoint with validation data (and ``restore_best``), else the last
    (see ``finished_checkpoint``). Its ``history`` is empty. So a recipe
    that runs several trainings in turn skips, when re-run, the ones already
    done.

    Args:
        model_fn, train, validation, run_dir, epochs, **fit_options: as for ``fit_classifier``.
    """
    checkpoint = finished_checkpoint(
        run_dir, epochs, restored_best=validation is not None and fit_options.get("restore_best", True),
        early_stopping=bool(fit_options.get("early_stopping_patience")),
    )
    if checkpoint is None:
        return fit_classifier(model_fn, train, validation, run_dir=run_dir, epochs=epochs, **fit_options)
    strategy = fit_options.get("strategy") or get_strategy()
    with strategy.scope():
        model = build_with_policy(model_fn, fit_options.get("mixed_precision", False))
    model.load_weights(checkpoint)
    return run_result(model, {}, run_dir, strategy)
