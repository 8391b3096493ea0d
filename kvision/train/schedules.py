"""Learning-rate schedules, expressed in epochs and built from Keras' own; epoch budgets of small training sets."""

import math

import keras

from kvision.errors import ModelError
from kvision.models.common import is_positive_int, require

SCHEDULES = ("cosine", "piecewise", "constant")


def make_schedule(
    name,
    learning_rate,
    *,
    steps_per_epoch,
    epochs,
    warmup_epochs=0,
    boundaries=(0.5, 0.75),
    decay_factor=0.1,
):
    """A learning-rate schedule over ``epochs`` epochs of ``steps_per_epoch`` steps.

    Args:
        name: "cosine" (linear warm-up then cosine decay to 0), "piecewise"
            (multiply by ``decay_factor`` at each fraction of training in
            ``boundaries``, He et al.'s ÷10 at 50% and 75%), or "constant".
        learning_rate: peak learning rate.
        warmup_epochs: linear warm-up from 0, cosine only; one as long as
            training or longer is cut to half of it (a quick ``--epochs 1`` run
            of a recipe whose default warm-up is one epoch).
    """
    total = max(1, int(steps_per_epoch * epochs))
    if name == "cosine":
        warmup = int(steps_per_epoch * warmup_epochs)
        if warmup >= total:
            warmup = total // 2
        if warmup == 0:
            return keras.optimizers.schedules.CosineDecay(learning_rate, total)
        return keras.optimizers.schedules.CosineDecay(
            0.0, total - warmup, warmup_target=learning_rate, warmup_steps=warmup
        )
    if name == "piecewise":
        steps = [int(total * b) for b in boundaries]
        values = [learning_rate * decay_factor**i for i in range(len(steps) + 1)]
        return keras.optimizers.schedules.PiecewiseConstantDecay(steps, values)
    if name == "constant":
        return learning_rate
    raise ModelError(f"Unknown schedule. Expected one of {SCHEDULES}. Received: {name!r}")


def epoch_budget(examples, batch_size, epochs, *, replicas=1, min_steps=0, max_epochs=None, multiple_of=1):
    """Per-replica batch size and epochs of a training on ``examples`` examples, with enough steps when they are few.

    A small labelled share takes few optimisation steps an epoch (1% of
    Fashion-MNIST, 600 labels, is 4 steps of 128), so the epochs that suit
    the whole training set would barely move its weights. The budget is
    ``epochs``, or more so that training takes at least ``min_steps`` steps,
    rounded up to a multiple of ``multiple_of`` and capped at ``max_epochs``
    (rounded down to a multiple). A set smaller than one global batch trains
    on batches of all its examples.

    Args:
        examples: training examples.
        batch_size: per replica, at most.
        epochs: the fewest epochs (before the cap).
        replicas: replicas the global batch is split over.
        min_steps: the fewest optimisation steps (before the cap).
        max_epochs: the most epochs; None: no cap.
        multiple_of: the epochs are a multiple of this: ``multiple_of=E`` scales a
            schedule of ``E`` epochs (several phases) by a whole factor.

    Returns:
        ``(batch_size, epochs)``: the per-replica batch size and the epochs.
    """
    require(all(map(is_positive_int, (examples, batch_size, replicas, multiple_of))),
            "examples, batch_size, replicas and multiple_of are positive integers.",
            examples=examples, batch_size=batch_size, replicas=replicas, multiple_of=multiple_of)
    require(epochs >= 0 and min_steps >= 0, "epochs and min_steps are >= 0.", epochs=epochs, min_steps=min_steps)
    require(max_epochs is None or max_epochs >= multiple_of, "max_epochs allows at least one multiple_of epochs.",
            max_epochs=max_epochs, multiple_of=multiple_of)
    batch_size = max(1, min(batch_size, examples // replicas))
    steps_per_epoch = max(1, examples // (batch_size * replicas))
    wanted = max(epochs, math.ceil(min_steps / steps_per_epoch))
    budget = multiple_of * math.ceil(wanted / multiple_of)
    if max_epochs is not None:
        budget = min(budget, max_epochs // multiple_of * multiple_of)
    return batch_size, budget
