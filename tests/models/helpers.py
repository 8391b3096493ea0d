"""Checks shared by the model tests."""

import re

import keras
import numpy as np


def images(input_shape, batch=2, seed=0):
    """``batch`` random raw-range (0..255) float32 images."""
    return np.random.default_rng(seed).uniform(0, 255, (batch, *input_shape)).astype("float32")


def trainable_params(model):
    """Number of trainable parameters (what papers count; BN moving statistics excluded)."""
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def default_name(layer):
    """The name Keras gives an unnamed layer of this class (before any ``_N`` suffix)."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", type(layer).__name__)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def assert_layers_named(model):
    """No layer carries a name Keras generated, so names are stable across builds."""
    unnamed = [
        layer.name
        for layer in model.layers
        if re.fullmatch(rf"{default_name(layer)}(_\d+)?", layer.name)
    ]
    assert not unnamed, f"layers without an explicit name: {unnamed}"


def assert_survives_save_and_config(model, x, path):
    """``.keras`` save → load and ``get_config`` → ``from_config`` keep the outputs."""
    model(x, training=True)  # move the BN statistics off their initial values
    expected = keras.ops.convert_to_numpy(model(x, training=False))

    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded(x, training=False)), expected)

    rebuilt = keras.Model.from_config(model.get_config())
    assert [layer.name for layer in rebuilt.layers] == [layer.name for layer in model.layers]
    rebuilt.set_weights(model.get_weights())
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(rebuilt(x, training=False)), expected)
