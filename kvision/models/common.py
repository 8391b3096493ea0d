"""The input and output ends every classifier builder shares, and option checks."""

import keras
import numpy as np
from keras import layers

from kvision.errors import ModelError
from kvision.layers import MirrorImages, preprocess


def require(ok, expected, **received):
    """Raise ``ModelError(expected + " Received: ...")`` unless ``ok``."""
    if not ok:
        shown = ", ".join(f"{key}={value!r}" for key, value in received.items())
        raise ModelError(f"{expected} Received: {shown}")


def is_positive_int(value):
    """True for a positive integer (Python or NumPy), False for bools and the rest."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value > 0


def classifier_input(input_shape, num_classes, *, min_size, model, mean=None, std=None):
    """Validate the shape and class count, then return ``(inputs, preprocessed)``.

    ``inputs`` is the float32 ``keras.Input`` named ``"image"`` taking raw 0..255
    pixels; ``preprocessed`` is it after :func:`kvision.layers.preprocess`.

    Args:
        input_shape: ``(height, width, channels)``.
        num_classes: number of output logits.
        min_size: smallest height and width the model can take.
        model: the model's name as used in error messages, e.g. ``"ResNet-20 (CIFAR)"``.
        mean, std: per-channel statistics for :func:`kvision.layers.preprocess`.
    """
    require(
        isinstance(input_shape, (tuple, list))
        and len(input_shape) == 3
        and all(map(is_positive_int, input_shape)),
        f"{model} takes input_shape=(height, width, channels) of positive integers.",
        input_shape=input_shape,
    )
    input_shape = tuple(int(d) for d in input_shape)
    require(
        min(input_shape[:2]) >= min_size,
        f"{model} needs inputs of at least {min_size}×{min_size} pixels.",
        input_shape=input_shape,
    )
    require(is_positive_int(num_classes), "num_classes must be positive.", num_classes=num_classes)
    inputs = keras.Input(shape=input_shape, dtype="float32", name="image")
    return inputs, preprocess(inputs, mean=mean, std=std)


def logits_layer(classifier):
    """The final ``Dense`` named ``"logits"`` of a kvision classifier, or ``ModelError``."""
    try:
        return classifier.get_layer("logits")
    except ValueError:
        raise ModelError(
            f"Expected a kvision classifier with a final layer named 'logits'. Received: model {classifier.name!r} "
            f"with layers {[layer.name for layer in classifier.layers[-3:]]}"
        ) from None


def classifier_backbone(classifier, name=None):
    """``classifier`` without its ``logits`` layer: raw 0..255 images → penultimate features.

    The layers are shared, not copied: training the backbone trains the classifier.
    """
    features = logits_layer(classifier).input
    return keras.Model(classifier.input, features, name=name or f"{classifier.name}_backbone")


def classifier_logits(x, num_classes):
    """The final ``Dense`` named ``"logits"``, kept float32 under mixed precision."""
    return layers.Dense(num_classes, dtype="float32", name="logits")(x)


def flip_averaged(classifier):
    """``classifier`` with test-time flip augmentation: the mean of its logits on each image and on its mirror.

    One model, sharing the classifier's weights (nested, not copied), so the
    evaluation, the SavedModel and the TFLite files all hold both passes and a
    server needs nothing else; it costs two forward passes per image. Keep
    training the plain ``classifier``: this model is for evaluation and export.
    """
    inputs = keras.Input(shape=classifier.input_shape[1:], dtype="float32", name="image")
    logits = layers.Average(name="logits")([classifier(inputs), classifier(MirrorImages(name="mirror")(inputs))])
    return keras.Model(inputs, logits, name=f"{classifier.name}_flip_tta")
