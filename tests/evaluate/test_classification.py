import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from kvision.errors import DataError
from kvision.evaluate import accuracy, classification_report, evaluate_classifier, plot_training_curves, read_history
from tests.helpers import quadrant_images, small_cnn, summary_events

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_report_values_on_a_hand_checked_example():
    labels = np.array([0, 0, 1, 1, 2, 2])
    predicted = np.array([0, 1, 1, 1, 0, 2])
    report = classification_report(np.eye(3)[predicted], labels, ["a", "b", "c"])
    assert report["accuracy"] == pytest.approx(4 / 6)
    assert report["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    a, b, c = (report["per_class"][k] for k in "abc")
    assert (a["precision"], a["recall"]) == pytest.approx((0.5, 0.5))
    assert (b["precision"], b["recall"], b["f1"]) == pytest.approx((2 / 3, 1.0, 0.8))
    assert (c["precision"], c["recall"], c["support"]) == pytest.approx((1.0, 0.5, 2))
    assert "top5_accuracy" not in report, "top-5 of 3 classes is always 1"


def test_top5_and_never_predicted_classes():
    labels = np.arange(10)
    logits = np.zeros((10, 10))
    logits[:, 0] = 10  # always predicts class 0
    logits[np.arange(10), labels] += np.where(labels < 4, 5, 0)  # true class second for labels 1..3
    logits[:, 9] -= 1  # class 9 ranks last
    report = classification_report(logits, labels, [str(i) for i in range(10)])
    assert report["accuracy"] == pytest.approx(0.1)
    # classes 0..3 are in the top 5 by score; 4..8 tie at 0 with lower indices first; 9 is last.
    assert report["top5_accuracy"] == pytest.approx(0.5)
    assert report["per_class"]["5"]["precision"] == 0.0


def test_accuracy_is_the_share_of_images_whose_logits_peak_at_their_label():
    # Logits = the first two pixels: class 0 where the first is brighter.
    model = keras.Sequential([keras.Input((1, 2, 1)), keras.layers.Flatten(), keras.layers.Dense(2, use_bias=False)])
    model.layers[-1].set_weights([np.eye(2, dtype="float32")])
    images = np.array([[9, 1], [1, 9], [9, 1], [1, 9], [9, 1]], np.uint8).reshape(5, 1, 2, 1)
    assert accuracy(model, images, np.array([0, 1, 1, 1, 0]), batch_size=2) == pytest.approx(0.8)


def test_mismatched_logits_are_refused():
    with pytest.raises(DataError, match=r"Expected logits of shape \(3, 2\).*Received: shape \(3, 4\)"):
        classification_report(np.zeros((3, 4)), np.zeros(3), ["a", "b"])


def test_evaluate_classifier_writes_report_and_plots(tmp_path):
    images, labels = quadrant_images(40)
    history = tmp_path / "history.csv"
    history.write_text("epoch,accuracy,loss,learning_rate,val_accuracy,val_loss\n"
                       "0,0.5,1.2,0.1,0.4,1.3\n1,0.7,0.9,0.05,0.6,1.0\n1,0.8,0.8,0.05,0.7,0.9\n")
    model = small_cnn()
    report = evaluate_classifier(model, images, labels, list("abcd"), tmp_path / "eval",
                                 history_csv=history, log_dir=tmp_path / "logs")
    on_disk = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert on_disk["accuracy"] == report["accuracy"]
    assert sum(map(sum, on_disk["confusion_matrix"])) == 40
    for name in ("confusion_matrix.png", "training_curves.png"):
        assert (tmp_path / "eval" / name).read_bytes()[:8] == PNG_MAGIC
    logged = summary_events(tmp_path / "logs" / "evaluation")
    headline = [f"test/{key}" for key in ("accuracy", "macro_f1", "top5_accuracy") if key in report]
    assert sorted(logged.Tags()["tensors"]) == ["confusion_matrix", *headline]
    for tag in headline:
        assert float(tf.make_ndarray(logged.Tensors(tag)[0].tensor_proto)) == pytest.approx(report[tag[5:]])


def test_read_history_keeps_the_last_row_of_a_repeated_epoch(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text("epoch,loss\n0,2.0\n1,1.5\n1,1.4\n2,1.0\n")
    history = read_history(path)
    assert history == {"epoch": [0, 1, 2], "loss": [2.0, 1.4, 1.0]}
    plot_training_curves(history, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:8] == PNG_MAGIC
