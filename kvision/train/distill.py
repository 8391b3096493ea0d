"""Knowledge distillation: a student classifier trained on a frozen teacher's softened outputs.

Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural Network"
(https://arxiv.org/abs/1503.02531). The student learns from the hard labels
and from the teacher's class probabilities at temperature ``T``, whose
"dark knowledge" (which wrong classes look alike) is a richer signal than the
labels alone.

``Distiller`` overrides only ``compute_loss``, so Keras' own ``train_step``
(loss scaling under mixed precision, ``tf.distribute``, XLA) trains it, and
it plugs into the engine as a training wrapper::

    fit_classifier(student_fn, train, validation, run_dir=...,
                   wrap=lambda student: Distiller(student, load_teacher("teacher.keras")))

The wrapper is built inside the run's strategy scope, so the teacher loaded
there is mirrored like the student.
"""

from pathlib import Path

import keras
from keras import ops

from kvision.errors import ModelError
from kvision.models.common import logits_layer, require
from kvision.saving import load_model


class SoftTargetLoss(keras.losses.Loss):
    """``T² · KL(softmax(teacher/T) ‖ softmax(student/T))`` per example, from logits.

    The ``T²`` keeps the gradients' scale independent of the temperature
    (Hinton et al. §2), so ``alpha`` means the same at any ``T``. Called as
    ``loss(teacher_logits, student_logits)``: the teacher's softened
    probabilities are the targets.
    """

    def __init__(self, temperature=4.0, name="soft_target_kl", **kwargs):
        super().__init__(name=name, **kwargs)
        self.temperature = temperature

    def call(self, teacher_logits, student_logits):
        teacher = ops.log_softmax(teacher_logits / self.temperature, axis=-1)
        student = ops.log_softmax(student_logits / self.temperature, axis=-1)
        return self.temperature**2 * ops.sum(ops.exp(teacher) * (teacher - student), axis=-1)

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature}


class Distiller(keras.Model):
    """Trains ``student`` on ``α · hard-label loss + (1 − α) · T² · KL(teacher ‖ student) + regularisation``.

    The hard-label loss is the one ``compile`` was given (label smoothing,
    sample weights included); regularisation (the engine's weight decay on
    the student's kernels) is added at full weight, so ``alpha`` balances the
    two targets without changing the weight decay. The teacher is frozen and
    runs in inference mode; its logits are cast to float32, so a float16 or
    float32 teacher serves a student under either precision policy. Metrics
    are the student's, and validation (``training=False``) reports the
    compiled loss alone (hard labels and regularisation), comparable with a
    student trained without a teacher and not paying for the teacher's
    forward pass.

    The student is ``.network``: the engine's checkpoints and its result hold
    it alone.

    Args:
        student: the classifier to train (logits outputs).
        teacher: a trained classifier of the same input shape and classes.
        temperature: softening ``T`` of both networks' logits (> 0).
        alpha: weight of the hard-label loss, in [0, 1].
    """

    def __init__(self, student, teacher, *, temperature=4.0, alpha=0.1, **kwargs):
        super().__init__(**kwargs)
        require(temperature > 0, "temperature must be positive.", temperature=temperature)
        require(0 <= alpha <= 1, "alpha must be in [0, 1].", alpha=alpha)
        require(
            teacher.output_shape[-1] == student.output_shape[-1],
            "The teacher must predict the student's classes.",
            teacher_classes=teacher.output_shape[-1], student_classes=student.output_shape[-1],
        )
        require(
            tuple(teacher.input_shape[1:]) == tuple(student.input_shape[1:]),
            "The teacher must take the student's input shape.",
            teacher_input=tuple(teacher.input_shape[1:]), student_input=tuple(student.input_shape[1:]),
        )
        teacher.trainable = False
        self.network = student
        self.teacher = teacher
        self.alpha = alpha
        self.soft_target_loss = SoftTargetLoss(temperature)
        self.built = True  # both networks are built functional models

    def call(self, inputs, training=None):
        return self.network(inputs, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        total = super().compute_loss(x, y, y_pred, sample_weight, training=training)  # hard-label + regularisation
        if not training:
            return total
        hard = self._compile_loss(y, y_pred, sample_weight)  # the compiled loss alone, as Keras computes it above
        teacher_logits = ops.cast(self.teacher(x, training=False), "float32")
        soft = self.soft_target_loss(teacher_logits, ops.cast(y_pred, "float32"), sample_weight)
        # α·hard + (1 − α)·soft + regularisation, written so that α = 1 is plain training bit for bit.
        return total + (1 - self.alpha) * (soft - hard)


def load_teacher(path, *, num_classes=None):
    """The kvision classifier saved at ``path`` (a ``.keras`` file), ready to be a ``Distiller``'s teacher.

    Call it inside the strategy scope (in ``fit_classifier``'s ``wrap``) so
    its variables are distributed like the student's.

    Args:
        path: a ``.keras`` classifier, e.g. a run's ``checkpoints/best.keras``.
        num_classes: the class count the teacher must predict, if known.

    Raises:
        ModelError: the file is missing or not a Keras model, the model is not
            a classifier with a ``logits`` layer, or its class count differs.
    """
    path = Path(path)
    if path.suffix != ".keras" or not path.is_file():
        raise ModelError(f"Expected a teacher classifier saved as a .keras file. Received: {path}")
    try:
        teacher = load_model(path, compile=False)
    except (ValueError, OSError, TypeError) as err:
        raise ModelError(f"Expected a Keras model in the teacher file. Received: {path} ({err})") from None
    logits_layer(teacher)
    if num_classes is not None and teacher.output_shape[-1] != num_classes:
        raise ModelError(
            f"Expected a teacher predicting {num_classes} classes. "
            f"Received: {path} with {teacher.output_shape[-1]} outputs"
        )
    return teacher
