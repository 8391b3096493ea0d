"""Classification metrics: accuracy, top-5, per-class precision/recall/F1, confusion matrix."""

import numpy as np
import tensorflow as tf

from kvision.data import make_pipeline
from kvision.errors import DataError


def predict_logits(model, images, *, batch_size=256):
    """Logits of ``model`` on uint8 ``images``, in order, as a float32 array."""
    dataset = make_pipeline(images, np.zeros(len(images), np.int64), batch_size=batch_size, training=False)
    return np.asarray(model.predict(dataset.map(lambda x, y: x), verbose=0), np.float32)


def predict_batches(model, dataset):
    """Logits of ``model`` on a ``tf.data.Dataset`` of ``(float32 images, int labels)`` batches, and the labels, in order.

    One batch at a time, so a streamed split of any size costs its logits only.
    """
    forward = tf.function(lambda images: model(images, training=False), reduce_retracing=True)
    logits, labels = [], []
    for images, batch_labels in dataset:
        logits.append(np.asarray(forward(images), np.float32))
        labels.append(batch_labels.numpy())
    return np.concatenate(logits), np.concatenate(labels)


def accuracy(model, images, labels, *, batch_size=256):
    """Share of uint8 ``images`` whose logits under ``model`` peak at their integer ``labels``, in [0, 1]."""
    predictions = predict_logits(model, images, batch_size=batch_size).argmax(axis=1)
    return float(np.mean(predictions == np.asarray(labels)))


def confusion_matrix(labels, predictions, num_classes):
    """``cm[i, j]`` = number of examples of true class i predicted as class j."""
    cm = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(cm, (labels, predictions), 1)
    return cm


def classification_report(logits, labels, class_names):
    """A JSON-ready dict of the metrics of ``logits`` against integer ``labels``.

    Top-5 accuracy is included when there are more than 5 classes (with 5 or
    fewer it is always 1). Precision of a class never predicted is 0.
    """
    logits, labels = np.asarray(logits), np.asarray(labels).astype(np.int64)
    num_classes = len(class_names)
    if logits.ndim != 2 or logits.shape != (len(labels), num_classes):
        raise DataError(
            f"Expected logits of shape ({len(labels)}, {num_classes}) for {len(labels)} labels "
            f"and {num_classes} classes. Received: shape {logits.shape}"
        )
    predictions = logits.argmax(axis=1)
    cm = confusion_matrix(labels, predictions, num_classes)
    true_positive = np.diag(cm).astype(np.float64)
    predicted, support = cm.sum(axis=0), cm.sum(axis=1)
    precision = np.divide(true_positive, predicted, out=np.zeros(num_classes), where=predicted > 0)
    recall = np.divide(true_positive, support, out=np.zeros(num_classes), where=support > 0)
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros(num_classes), where=denominator > 0)
    report = {
        "num_examples": int(len(labels)),
        "accuracy": float((predictions == labels).mean()),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(class_names)
        },
        "macro_f1": float(f1.mean()),
        "class_names": list(class_names),
        "confusion_matrix": cm.tolist(),
    }
    if num_classes > 5:
        top5 = np.argsort(-logits, axis=1)[:, :5]
        report["top5_accuracy"] = float((top5 == labels[:, None]).any(axis=1).mean())
    return report
