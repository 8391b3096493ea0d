import numpy as np
import pytest

from kvision.errors import ModelError
from kvision.train import make_schedule


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
    with pytest.raises(ModelError, match="warmup_epochs=5"):
        make_schedule("cosine", 0.1, steps_per_epoch=10, epochs=5, warmup_epochs=5)
