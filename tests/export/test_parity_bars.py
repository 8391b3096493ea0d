"""The |Δlogit| bars: float32 rounding at the logits' size passes, a real difference does not.

The case behind them: ResNet-20 on tiny CIFAR with ``--lr 0.5`` diverges; its
BN moving variances (3-18) lag activations of variance up to 7e9, so its
inference logits reach 1.5e6 and the fresh-process SavedModel gives the same
logits one float32 step (0.125) apart, which an absolute 1e-4 refused.
"""

import keras
import numpy as np
import pytest

import kvision.export.exporters as exporters
from kvision.export import verify
from tests.export.helpers import export

# Row 0 of that ResNet-20's Keras logits on the CIFAR test batch.
DIVERGED_LOGITS = np.array([[3.0781391e05, 1.1757996e06, 3.1898722e05, -5.7261338e05, -1.8628773e04,
                             -4.8205350e05, -1.5705483e05, -4.5229738e05, 1.4131482e04, -2.0678383e05]], np.float32)
NORMAL_LOGITS = np.array([[9.5, -3.25, 0.125, -7.0], [-2.0, 11.0, 4.5, -0.5]], np.float32)
SIGNATURES = ("serve_examples", "serve_images", "serving_default")


def saved_model_checks(keras_logits, served_logits):
    """``classifier_checks`` of a server that answered every signature with ``served_logits``."""
    names = [f"class{i}" for i in range(keras_logits.shape[-1])]
    served_names = [names[i] for i in np.argmax(served_logits, -1)]
    summary = {
        "signatures": {s: {"outputs": list(verify.OUTPUTS)} for s in SIGNATURES},
        "calls": [{"signature": s, "file": f, "class_name": served_names} for s in SIGNATURES for f in (0, 1)],
        "imported": {"kvision": False, "tensorflow_serving": False},
    }
    outputs = {s: {"logits": served_logits} for s in SIGNATURES}
    checks = verify.classifier_checks(summary, outputs, keras_logits, names)
    return {c.name: c for c in checks if "Δlogit" in c.name}


def test_one_float32_step_at_diverged_logits_is_blessed_where_the_absolute_bar_refused_it():
    served = np.nextafter(DIVERGED_LOGITS, np.inf, dtype=np.float32)  # another kernel order: one rounding step
    diff = np.max(np.abs(served - DIVERGED_LOGITS))
    assert diff == 0.125 > verify.SAVED_MODEL_MAX_LOGIT_DIFF, "the absolute bar alone refuses this artifact"
    checks = saved_model_checks(DIVERGED_LOGITS, served)
    assert len(checks) == 3 and all(c.passed and c.value == 0.125 for c in checks.values())
    assert all(2.0 < c.bar < 2.5 for c in checks.values()), "16 float32 epsilons of 1.18e6"


def test_a_real_difference_at_diverged_logits_is_still_refused():
    served = DIVERGED_LOGITS * np.float32(1 + 1e-5)  # 12 where rounding gives 0.125: not the same model
    assert not any(c.passed for c in saved_model_checks(DIVERGED_LOGITS, served).values())


@pytest.mark.parametrize("diff, passed", [(1e-3, False), (1.5e-4, False), (5e-5, True)])
def test_ordinary_logits_are_held_to_the_absolute_bar(diff, passed):
    checks = saved_model_checks(NORMAL_LOGITS, NORMAL_LOGITS + np.float32(diff))
    assert all(c.bar == verify.SAVED_MODEL_MAX_LOGIT_DIFF for c in checks.values())
    assert all(c.passed is passed for c in checks.values())


def test_the_bar_follows_keras_logits_only_and_non_finite_logits_fail():
    assert verify.logit_bar(1e-4, verify.largest_abs_logit(np.float32([[10.0, -50.0]]))) == 1e-4
    assert verify.logit_bar(1e-4, verify.largest_abs_logit(np.float32([[np.inf, np.nan]]))) == 1e-4
    huge_served = NORMAL_LOGITS.copy()
    huge_served[0, 0] = 1e6  # a broken artifact's own logits do not widen its bar
    assert not any(c.passed for c in saved_model_checks(NORMAL_LOGITS, huge_served).values())
    nan_served = NORMAL_LOGITS.copy()
    nan_served[1, 2] = np.nan
    assert not any(c.passed for c in saved_model_checks(NORMAL_LOGITS, nan_served).values())
    inf_keras = DIVERGED_LOGITS.copy()
    inf_keras[0, 1] = np.inf
    assert not any(c.passed for c in saved_model_checks(inf_keras, inf_keras).values())


def test_tflite_float32_bar_scales_the_same_way():
    def passed(largest, diff):
        return verify.tflite_checks("float32", {"max_abs_logit_diff": diff, "keras_max_abs_logit": largest})[0].passed

    assert passed(1.2e6, 0.375) and not passed(1.2e6, 12.0)  # 3 steps of the diverged ResNet-20's TFLite file
    assert not passed(10.0, 2e-3) and passed(10.0, 5e-4)


def scaled_copy(model, scale):
    """``model`` with its logits layer (kernel and bias) multiplied by ``scale``."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    layer = copy.get_layer("logits")
    layer.set_weights([w * scale for w in layer.get_weights()])
    return copy


def test_an_export_of_huge_logits_is_checked_against_their_scale(trained_cnn, quadrants, tmp_path):
    result = export(scaled_copy(trained_cnn, 1e5), quadrants, tmp_path, version=1, tflite=("float32",))
    bars = {c.name: c.bar for c in result.checks if "Δlogit" in c.name}
    assert len(bars) == 4 and min(bars.values()) > 0.01, bars
    assert result.blessed and result.pushed


def test_an_export_differing_by_1e_3_at_ordinary_logits_is_refused(trained_cnn, quadrants, tmp_path, monkeypatch):
    shifted = keras.models.clone_model(trained_cnn)
    shifted.set_weights(trained_cnn.get_weights())
    kernel, bias = shifted.get_layer("logits").get_weights()
    shifted.get_layer("logits").set_weights([kernel, bias + 1e-3])  # what a stale or wrong variable looks like
    archive = exporters.classifier_archive
    monkeypatch.setattr(exporters, "classifier_archive", lambda model, *args: archive(shifted, *args))
    result = export(trained_cnn, quadrants, tmp_path, version=1)
    failed = {c.name: c for c in result.failed_checks}
    assert not result.blessed and set(failed) == {f"SavedModel {s} max abs Δlogit" for s in SIGNATURES}
    assert all(c.bar == verify.SAVED_MODEL_MAX_LOGIT_DIFF and 9e-4 < c.value < 1.1e-3 for c in failed.values())
