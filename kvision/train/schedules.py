"""Learning-rate schedules, expressed in epochs and built from Keras' own."""

import keras

from kvision.errors import ModelError

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
        warmup_epochs: linear warm-up from 0, cosine only.
    """
    total = max(1, int(steps_per_epoch * epochs))
    if name == "cosine":
        warmup = int(steps_per_epoch * warmup_epochs)
        if warmup >= total:
            raise ModelError(
                f"warmup_epochs must be shorter than training. "
                f"Received: warmup_epochs={warmup_epochs}, epochs={epochs}"
            )
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
