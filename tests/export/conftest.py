"""A small classifier trained well enough that its decisions are stable under quantisation."""

import keras
import numpy as np
import pytest

from tests.helpers import quadrant_images, small_cnn

CLASS_NAMES = ["top-left", "top-right", "bottom-left", "bottom-right"]


@pytest.fixture(scope="session")
def quadrants():
    """``(train_images, train_labels), (eval_images, eval_labels)`` of 16×16×1 quadrant images."""
    images, labels = quadrant_images(700, seed=3)
    return (images[:500], labels[:500]), (images[500:], labels[500:])


@pytest.fixture(scope="session")
def trained_cnn(quadrants):
    (images, labels), (eval_images, eval_labels) = quadrants
    keras.utils.set_random_seed(0)
    model = small_cnn()
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(images.astype(np.float32), labels, epochs=8, batch_size=32, verbose=0)
    accuracy = model.evaluate(eval_images.astype(np.float32), eval_labels, verbose=0)[1]
    assert accuracy >= 0.98, "the fixture must be a confident classifier"
    return model
