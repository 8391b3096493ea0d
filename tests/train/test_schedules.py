import numpy as np
import pytest

from kvision.errors import ModelError
from kvision.train import epoch_budget, make_schedule


def test_cosine_warms_up_linearly_then_decays_to_zero():
    schedule = make_schedule("cosine", 0.4, steps_per_epoch=10, epochs=5, warmup_epochs=1)
    values = [float(schedule(step)) for step in (0, 5, 10, 30, 50)]
    np.testing.assert_allclose(values, [0.0, 0.2, 0.4, 0.2, 0.0], atol=1e-6)


def test_piecewise_divides_by_ten_at_half_and_three_quarters():
    schedule = make_schedule("piecewise", 0.1, steps_per_epoch=100, epochs=4)
    values = [float(schedule(step)) for step in (0, 199, 201, 299, 301, 399)]
    np.testing.assert_allclose(values, [0.1, 0.1, 0.01, 0.01, 0.001, 0.001], rtol=1e-6)


def test_bad_schedules_are_refused():
    with pytest.raises(ModelError, match="Received: 'linear'"):
        make_schedule("linear", 0.1, steps_per_epoch=1, epochs=1)


def test_a_warm_up_as_long_as_training_is_cut_to_half_of_it():
    """A quick ``--epochs 1`` run of a recipe whose default warm-up is one epoch."""
    schedule = make_schedule("cosine", 0.1, steps_per_epoch=10, epochs=1, warmup_epochs=1)
    rates = [float(schedule(step)) for step in (0, 5, 10)]
    assert rates == pytest.approx([0.0, 0.1, 0.0], abs=1e-7)


def test_epoch_budget_adds_epochs_up_to_the_steps_asked_for_and_caps_them():
    # 600 labels, batches of 128: 4 steps an epoch; 500 steps need 125 epochs.
    assert epoch_budget(600, 128, 20, min_steps=500) == (128, 125)
    assert epoch_budget(600, 128, 20, min_steps=500, max_epochs=100) == (128, 100)
    assert epoch_budget(60_000, 128, 20, min_steps=500, max_epochs=100) == (128, 20), "enough steps already"
    assert epoch_budget(600, 128, 20, min_steps=500, max_epochs=10) == (128, 10), "the cap wins over epochs"
    assert epoch_budget(600, 64, 20, replicas=2, min_steps=500) == (64, 125), "steps of the global batch"


def test_epoch_budget_in_whole_multiples_scales_a_schedule():
    # 300 labels, 2 steps of 128 an epoch; a 10-epoch schedule takes 20 steps: 1000 steps ask for ×50, capped at ×20.
    assert epoch_budget(300, 128, 10, min_steps=1000, max_epochs=200, multiple_of=10) == (128, 200)
    assert epoch_budget(300, 128, 10, min_steps=70, max_epochs=200, multiple_of=10) == (128, 40)  # 35 → ×4
    assert epoch_budget(300, 128, 10, min_steps=70, max_epochs=35, multiple_of=10) == (128, 30)


def test_epoch_budget_of_a_set_smaller_than_a_batch_uses_it_all_as_one_batch():
    assert epoch_budget(20, 128, 3, min_steps=10) == (20, 10)
    assert epoch_budget(20, 128, 3, replicas=2, min_steps=10) == (10, 10)
    assert epoch_budget(1, 128, 3) == (1, 3)


@pytest.mark.parametrize(
    "args, options, received",
    [
        ((0, 128, 3), {}, "examples=0"),
        ((100, 128, 3), {"multiple_of": 0}, "multiple_of=0"),
        ((100, 128, -1), {}, "epochs=-1"),
        ((100, 128, 3), {"max_epochs": 5, "multiple_of": 10}, "max_epochs=5, multiple_of=10"),
    ],
)
def test_epoch_budget_refuses_impossible_settings(args, options, received):
    with pytest.raises(ModelError, match=f"Received: .*{received}"):
        epoch_budget(*args, **options)
