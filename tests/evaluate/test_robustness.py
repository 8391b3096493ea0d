"""The robustness report: its figures are the attacks' accuracies, its files are written, bad input is refused."""

import json

import numpy as np
import pytest

from kvision.errors import DataError, ModelError
from kvision.evaluate import predict_logits, robustness_report
from kvision.train import fit_classifier, pgd
from tests.helpers import quadrant_images, small_cnn

TEST = quadrant_images(40, seed=5)


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """A small CNN trained for two epochs on the quadrant images."""
    return fit_classifier(
        small_cnn, quadrant_images(128, seed=4), run_dir=tmp_path_factory.mktemp("run"), epochs=2, batch_size=32,
        learning_rate=0.05, crop_padding=0, flip=False, seed=0, verbose=0,
    ).model


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("robustness")


@pytest.fixture(scope="module")
def report(classifier, out_dir):
    """Three batches (16, 16, 8) at three radii."""
    return robustness_report(classifier, *TEST, epsilons=(0.0, 0.05, 0.2), steps=4, batch_size=16, out_dir=out_dir)


def test_clean_accuracy_is_the_accuracy_of_the_predictions(classifier, report):
    images, labels = TEST
    assert report["clean_accuracy"] == np.mean(predict_logits(classifier, images).argmax(1) == labels)
    assert report["num_examples"] == 40 and report["epsilons"] == [0.0, 0.05, 0.2] and report["pgd_steps"] == 4


def test_every_figure_is_a_share_of_the_examples_and_epsilon_zero_is_clean(report):
    for attack in ("fgsm_accuracy", "pgd_accuracy"):
        values = np.asarray(report[attack])
        assert values.shape == (3,) and ((values >= 0) & (values <= 1)).all()
        np.testing.assert_allclose(values * 40, np.round(values * 40), atol=1e-9)
        assert values[0] == report["clean_accuracy"], "an ε = 0 attack returns the images unchanged"


def test_pgd_figure_is_the_accuracy_on_pgd_examples_with_the_seeded_start(classifier):
    """One batch: its random start is seeded with ``[seed, 0]``."""
    images, labels = TEST
    single = robustness_report(classifier, images, labels, epsilons=[0.2], steps=4, batch_size=64, seed=9)
    adversarial = pgd(classifier, images, labels, 0.2, steps=4, seed=[9, 0])
    expected = np.mean(np.argmax(classifier(adversarial, training=False), 1) == labels)
    # Eager and graph float rounding may differ; at most one example may land on the other side.
    assert single["pgd_accuracy"] == [pytest.approx(expected, abs=1 / 40 + 1e-9)]
    assert single == robustness_report(classifier, images, labels, epsilons=[0.2], steps=4, batch_size=64, seed=9)


def test_files_hold_the_report_and_the_curve(report, out_dir):
    assert json.loads((out_dir / "robustness.json").read_text()) == report
    assert report["files"] == {"robustness_curve": str(out_dir / "robustness.png")}
    assert (out_dir / "robustness.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "options, error, message",
    [
        (dict(epsilons=()), ModelError, "robustness_report needs at least one epsilon. Received: epsilons=\\[\\]"),
        (dict(epsilons=(0.1, -0.1)), ModelError, "must be ≥ 0. Received: epsilon=-0.1"),
        (dict(steps=0), ModelError, "steps must be a positive integer. Received: steps=0"),
        (dict(labels=np.full(40, 7)), DataError, r"expected labels in \[0, 3\] \(4 classes\). Received: labels in \[7, 7\]"),
    ],
)
def test_bad_input_is_a_clear_error(classifier, options, error, message):
    images, labels = TEST
    options = dict(options)
    with pytest.raises(error, match=message):
        robustness_report(classifier, images, options.pop("labels", labels), **options)
