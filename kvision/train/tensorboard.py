"""What a run shows in TensorBoard beyond Keras' scalars.

Every engine gets ``tensorboard_callbacks``: Keras' ``TensorBoard`` (epoch
scalars, the Keras model as a conceptual graph, the profiler on
``profile_batches``), the traced train step as the run's op graph
(``TrainStepGraph``), and the run's settings as an HParams session
(``HParamsSession``). Classifiers also get ``classifier_callbacks``: the
augmented images of a training batch when training starts
(``TrainingSamples``), a confusion-matrix image of the validation split every
epoch and per-class PR curves after the last (``ValidationFigures``).

Where things go, under a run's ``logs/``: the HParams session in ``logs``
itself (so ``train``, ``validation`` and ``evaluation`` are its metric
groups), the graph and sample images in ``train``, the confusion matrices and
PR curves in ``validation``, the test metrics in ``evaluation``
(``log_test_metrics``).
"""

import io
import math
import re
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tensorboard.plugins.hparams import api_pb2 as hparams_api
from tensorboard.plugins.hparams import summary as hparams_summary
from tensorboard.plugins.hparams import summary_v2 as hparams_v2
from tensorboard.plugins.pr_curve import summary as pr_curve_summary

from kvision.data.pipeline import make_pipeline
from kvision.data.stream import StreamSplit, stream_pipeline
from kvision.errors import ModelError
from kvision.train.strategy import is_chief

SAMPLE_IMAGES = 16  # augmented training images shown when training starts
FIGURE_EXAMPLES = 2000  # validation examples predicted each epoch for the confusion matrix and the PR curves
PR_THRESHOLDS = 201
ARRAY_OPTIONS = ("crop_padding", "flip", "cutout", "random_erasing")  # make_pipeline's augmentation
EVALUATION_OPTIONS = ("image_shape", "crop", "limits", "skip_bad_images")  # stream_pipeline's, evaluating


def parse_profile_batches(value):
    """``profile_batches`` as the ``(first, last)`` batches to profile, or None (profiler off).

    Accepts ``"A,B"``, ``(A, B)``, one batch ``A`` (``"A"`` or an int), or
    None/0/"" for off. Batches count from 1 over the whole run (Keras'
    ``TensorBoard(profile_batch=...)``), so ``"10,20"`` skips the slow first
    steps (tracing, warm-up) and profiles ten of the steady ones.
    """
    if value is None or value == "" or value == 0:
        return None
    parts = value.split(",") if isinstance(value, str) else value if isinstance(value, (tuple, list)) else (value,)
    try:
        batches = tuple(int(str(part).strip()) for part in parts)
    except ValueError:
        batches = ()
    if len(batches) == 1:
        batches *= 2
    if len(batches) != 2 or batches[0] < 1 or batches[1] < batches[0] or isinstance(value, bool):
        raise ModelError("Expected profile_batches as 'A,B' (or one batch 'A'): the first and last training batches "
                         f"to profile, counted from 1 with A <= B. Received: {value!r}")
    return batches


def hparam_values(settings, prefix=""):
    """``settings`` as values the HParams dashboard takes: bool, int, float or str, nested keys dotted.

    None becomes "None", a list or tuple its items joined by commas (``"0.5,0.75"``,
    as on a command line), a dict or dataclass one entry per field (``"augmentation.flip"``),
    numpy scalars Python ones, anything else (a path) its ``str``.
    """
    values = {}
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if hasattr(value, "__dataclass_fields__"):
            value = {field: getattr(value, field) for field in value.__dataclass_fields__}
        if isinstance(value, dict):
            values.update(hparam_values(value, prefix=f"{name}."))
        elif isinstance(value, np.generic):
            values[name] = value.item()
        elif isinstance(value, (bool, int, float, str)):
            values[name] = value
        elif isinstance(value, (list, tuple)):
            values[name] = ",".join(str(item) for item in value)
        else:
            values[name] = str(value)
    return values


def log_test_metrics(log_dir, metrics, *, images=None, texts=None, step=0):
    """Write a run's test results under ``log_dir/evaluation``, the one writer every evaluation report uses.

    The numbers of ``metrics`` become ``test/<name>`` scalars, which the
    HParams dashboard shows beside the run's settings (group "evaluation");
    non-numeric entries are skipped. ``images`` maps tags to PNG files (the
    confusion matrix, attention maps), ``texts`` maps tags to markdown (a
    table of predictions). ``log_dir`` is the run's ``logs`` folder.
    """
    with tf.summary.create_file_writer(str(Path(log_dir) / "evaluation")).as_default():
        for name, value in metrics.items():
            if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
                tf.summary.scalar(f"test/{name}", np.float32(value), step=step)
        for tag, png in (images or {}).items():
            tf.summary.image(tag, tf.io.decode_png(tf.io.read_file(str(png)), channels=4)[None], step=step)
        for tag, markdown in (texts or {}).items():
            tf.summary.text(tag, markdown, step=step)


class SummaryCallback(keras.callbacks.Callback):
    """A callback writing to its own summary writer on ``log_dir``, opened on first use, closed when training ends."""

    def __init__(self, log_dir):
        super().__init__()
        self.log_dir = Path(log_dir)
        self._writer = None

    @property
    def writer(self):
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(str(self.log_dir))
        return self._writer

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class TrainStepGraph(SummaryCallback):
    """Writes the train step's op graph as the run's graph (TensorBoard's Graphs tab), after the first batch.

    Keras 3's ``train_function`` is a Python function around its
    ``tf.function``s, so Keras' ``TensorBoard(write_graph=True)`` writes only
    the conceptual Keras-model graph; the dashboard opens on "Op graph" for
    it and fails with "Malformed GraphDef". Here ``train_step`` under the
    model's strategy is traced once more (as Keras traces it: no autograph)
    for the ``input_spec`` of the training input, and that graph is written:
    the forward pass, the gradients and the optimizer's updates. Runs on every
    worker of a multi-worker job, so their collective keys stay in step.
    """

    def __init__(self, log_dir, input_spec):
        super().__init__(log_dir)
        self.input_spec = input_spec
        self.written = False

    def on_train_batch_end(self, batch, logs=None):
        if self.written:
            return
        self.written = True
        model = self.model
        step = tf.function(lambda data: model.distribute_strategy.run(model.train_step, args=(data,)), autograph=False)
        graph = step.get_concrete_function(self.input_spec).graph
        with self.writer.as_default():
            tf.summary.graph(graph)
        self.writer.flush()


class HParamsSession(SummaryCallback):
    """The run as a session of TensorBoard's HParams dashboard: its settings when training starts, its end after.

    No experiment config is written: runs compared side by side each have
    their own ``logs``, and TensorBoard would take one run's config for all
    (hiding the settings the others add). Without one, the dashboard lists
    every setting of every run and, as metrics, the last value of each scalar
    in the session's groups (``train``, ``validation``, ``evaluation``).
    The trial id is the run directory's name.
    """

    def __init__(self, log_dir, hparams):
        super().__init__(log_dir)
        self.hparams = hparam_values(hparams)

    def on_train_begin(self, logs=None):
        with self.writer.as_default():
            hparams_v2.hparams(self.hparams, trial_id=self.log_dir.parent.name)
        self.writer.flush()

    def on_train_end(self, logs=None):
        end = hparams_summary.session_end_pb(hparams_api.STATUS_SUCCESS)
        with self.writer.as_default():
            tf.summary.experimental.write_raw_pb(end.SerializeToString(), step=0)
        super().on_train_end(logs)


def display_images(images, value_range=(0, 255)):
    """Float images in ``value_range`` (kvision's pipelines: 0..255) as uint8 0..255 for display."""
    low, high = value_range
    scaled = (np.asarray(images, np.float32) - low) * (255.0 / (high - low))
    return np.clip(np.round(scaled), 0, 255).astype(np.uint8)


class TrainingSamples(SummaryCallback):
    """When training starts: ``max_images`` images of the first batch of ``preview``, as the model sees them.

    ``preview`` is a ``tf.data.Dataset`` of ``(images, labels)`` batches
    augmented as the training batches are (``classifier_inputs``). The image
    description lists their labels (``class_names``).
    """

    def __init__(self, log_dir, preview, *, class_names=None, max_images=SAMPLE_IMAGES):
        super().__init__(log_dir)
        self.preview = preview
        self.class_names = class_names
        self.max_images = max_images

    def on_train_begin(self, logs=None):
        images, labels = next(iter(self.preview))
        images = display_images(images[: self.max_images])
        labels = class_indices(labels[: self.max_images])
        names = [label_name(label, self.class_names) for label in labels]
        with self.writer.as_default():
            tf.summary.image("augmented_training_batch", images, step=0, max_outputs=self.max_images,
                             description="What the model trains on, after augmentation; labels in order: " + ", ".join(names))
        self.writer.flush()


def class_indices(labels):
    """Integer class labels from int labels or one-hot rows."""
    labels = np.asarray(labels)
    return labels.argmax(axis=-1) if labels.ndim == 2 else labels.astype(np.int64)


def label_name(label, class_names):
    return str(class_names[label]) if class_names is not None else str(label)


def confusion_counts(labels, predictions, num_classes):
    """``(num_classes, num_classes)`` counts: row = true class, column = predicted class."""
    flat = np.asarray(labels, np.int64) * num_classes + np.asarray(predictions, np.int64)
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def confusion_figure(counts, class_names, *, title="Confusion matrix"):
    """The row-normalised confusion matrix with counts in the cells, as a ``matplotlib.figure.Figure``.

    Matplotlib's object API: no pyplot, no backend switched, safe beside a
    notebook's inline plots. Tick labels up to 50 classes, counts up to 20.
    """
    from matplotlib.figure import Figure  # here, not at import: only runs that draw pay for matplotlib

    counts = np.asarray(counts)
    n = len(counts)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = min(12.0, max(5.0, 0.55 * n + 2))
    fig = Figure(figsize=(size, size), dpi=100)
    ax = fig.add_subplot()
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    if n <= 50:
        ax.set_xticks(np.arange(n), class_names, rotation=45, ha="right")
        ax.set_yticks(np.arange(n), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if n <= 20:
        for i, j in np.ndindex(counts.shape):
            ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if rates[i, j] > 0.5 else "black")
    fig.tight_layout()
    return fig


def figure_image(fig):
    """A figure as a ``[1, H, W, 4]`` uint8 tensor, for ``tf.summary.image``."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return tf.io.decode_png(buffer.getvalue(), channels=4)[None]


def safe_tag(name):
    """A class name as a TensorBoard tag part: no slashes (they would nest), no blanks at the ends."""
    return re.sub(r"[/\\]", "_", str(name)).strip() or "_"


class ValidationFigures(SummaryCallback):
    """A confusion-matrix image every epoch on the validation split; per-class PR curves after the last epoch.

    As TensorBoard's image-summary tutorial does: at each epoch end the
    network (a training wrapper's ``.network``) predicts ``validation``,
    the matrix is drawn with matplotlib and written as a PNG image
    (``confusion_matrix``, step = epoch). The cost is bounded: at most
    ``max_examples`` validation examples are predicted (the first of
    ``validation``, which ``classifier_inputs`` draws at random), by a
    ``tf.function`` outside ``strategy.run``, so it works under any
    strategy without collectives. When training ends, the last epoch's
    predictions give one PR curve per class (``<class>/pr_curves``; class
    vs rest on the softmax probability).
    """

    def __init__(self, log_dir, validation, *, class_names=None, max_examples=FIGURE_EXAMPLES):
        super().__init__(log_dir)
        self.validation = validation
        self.class_names = class_names
        self.max_examples = max_examples
        self.last = None  # (epoch, labels, probabilities) of the last epoch
        self._predict = None

    def predictions(self):
        """``(int labels, softmax probabilities)`` of up to ``max_examples`` validation examples."""
        if self._predict is None:
            network = getattr(self.model, "network", self.model)
            self._predict = tf.function(lambda images: tf.nn.softmax(tf.cast(network(images, training=False), tf.float32)),
                                        reduce_retracing=True)
        labels, probabilities, seen = [], [], 0
        for images, batch_labels in self.validation:
            take = min(self.max_examples - seen, len(images))
            labels.append(class_indices(batch_labels[:take]))
            probabilities.append(self._predict(images[:take]).numpy())
            seen += take
            if seen >= self.max_examples:
                break
        return np.concatenate(labels), np.concatenate(probabilities)

    def on_epoch_end(self, epoch, logs=None):
        labels, probabilities = self.predictions()
        names = self.class_names or [str(k) for k in range(probabilities.shape[1])]
        counts = confusion_counts(labels, probabilities.argmax(axis=1), probabilities.shape[1])
        accuracy = np.trace(counts) / max(counts.sum(), 1)
        fig = confusion_figure(counts, names, title=f"Validation, epoch {epoch + 1}: {len(labels)} examples, "
                                                    f"accuracy {accuracy:.1%}")
        with self.writer.as_default():
            tf.summary.image("confusion_matrix", figure_image(fig), step=epoch,
                             description=f"The first {len(labels)} examples of the validation split")
        self.writer.flush()
        self.last = (epoch, labels, probabilities)

    def on_train_end(self, logs=None):
        if self.last is not None:
            epoch, labels, probabilities = self.last
            names = self.class_names or [str(k) for k in range(probabilities.shape[1])]
            with self.writer.as_default():
                for k, name in enumerate(names):
                    curve = pr_curve_summary.pb(safe_tag(name), labels == k, probabilities[:, k],
                                                num_thresholds=PR_THRESHOLDS,
                                                description=f"{name} vs the rest, validation, epoch {epoch + 1}")
                    tf.summary.experimental.write_raw_pb(curve.SerializeToString(), step=epoch)
        super().on_train_end(logs)


def tensorboard_callbacks(log_dir, *, input_spec=None, hparams=None, profile_batches=None):
    """The TensorBoard callbacks of every engine: Keras' scalars and profiler, the op graph, the HParams session.

    Args:
        log_dir: the run's ``logs`` folder.
        input_spec: ``element_spec`` of the training input; with it, the
            train step's graph is written (``TrainStepGraph``).
        hparams: the run's settings (``hparam_values`` converts them), or
            None for no HParams session.
        profile_batches: batches to profile (``parse_profile_batches``); the
            trace goes to ``logs/train/plugins/profile`` and TensorBoard shows
            it with the ``tensorboard-plugin-profile`` package installed.
    """
    batches = parse_profile_batches(profile_batches)
    log_dir = Path(log_dir)
    return [
        keras.callbacks.TensorBoard(str(log_dir), write_graph=True, update_freq="epoch", profile_batch=batches or 0),
        *([TrainStepGraph(log_dir / "train", input_spec)] if input_spec is not None else []),
        *([HParamsSession(log_dir, hparams)] if hparams is not None else []),
    ]


def classifier_callbacks(log_dir, *, preview=None, validation=None, class_names=None,
                         max_examples=FIGURE_EXAMPLES):
    """A classifier's image summaries: ``TrainingSamples`` of ``preview``, ``ValidationFigures`` of ``validation``.

    ``preview`` and ``validation`` as ``classifier_inputs`` makes them; either
    may be None; ``max_examples=0`` turns the validation figures off. None on
    a non-chief worker of a multi-worker job: its logs are discarded.
    """
    log_dir = Path(log_dir)
    callbacks = []
    if not is_chief():
        return callbacks
    if preview is not None:
        callbacks.append(TrainingSamples(log_dir / "train", preview, class_names=class_names))
    if validation is not None and max_examples:
        callbacks.append(ValidationFigures(log_dir / "validation", validation, class_names=class_names,
                                           max_examples=max_examples))
    return callbacks


def shuffled_split(split, order_seed=0):
    """``split`` read in a seeded random file order even for evaluation, so its first examples mix the classes."""
    def read(input_context=None, shuffle=False, seed=None):  # an evaluation pipeline asks for the stored order
        return split.read(input_context=input_context, shuffle=True, seed=order_seed)

    return StreamSplit(split.count, read)


def classifier_inputs(train, validation, *, batch_size, max_examples=FIGURE_EXAMPLES, samples=SAMPLE_IMAGES,
                      seed=0, **augmentation):
    """Plain ``tf.data`` inputs of ``classifier_callbacks``: an augmented training preview and a validation sample.

    ``train`` and ``validation`` as ``fit_classifier`` takes them (arrays or
    ``StreamSplit``s; validation may be None). The preview is one batch of
    ``samples`` training examples through the training augmentation
    (``augmentation``: ``make_pipeline``'s, or ``stream_pipeline``'s with
    ``image_shape``), so it costs ``samples`` decodes. The validation sample
    is ``max_examples`` examples drawn at random (arrays: one seeded subset;
    streams: the first of a seeded random file order, redrawn each epoch), in evaluation batches of
    ``batch_size``. Both are read on one pipeline, whatever the strategy.
    """
    def pipeline(split, training, size, limit):
        if isinstance(split, StreamSplit):
            options = dict(augmentation) if training else {key: augmentation[key] for key in EVALUATION_OPTIONS
                                                           if key in augmentation}
            dataset = stream_pipeline(split if training else shuffled_split(split, seed), batch_size=size,
                                      training=training, seed=seed, shuffle_buffer=size, drop_remainder=False,
                                      **options)
            return dataset.take(math.ceil(limit / size))
        images, labels = split
        chosen = np.sort(np.random.default_rng(seed).choice(len(images), min(limit, len(images)), replace=False))
        options = {key: augmentation[key] for key in ARRAY_OPTIONS if key in augmentation} if training else {}
        return make_pipeline(images[chosen], labels[chosen], batch_size=size, training=training, seed=seed,
                             cache=False, drop_remainder=False, **options)

    preview = pipeline(train, True, samples, samples) if samples else None
    sample = pipeline(validation, False, batch_size, max_examples) if validation is not None and max_examples else None
    return preview, sample
