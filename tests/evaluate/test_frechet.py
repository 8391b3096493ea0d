"""Fréchet distance and generator quality figures."""

import keras
import numpy as np
import pytest

from kvision.errors import ModelError
from kvision.evaluate.frechet import feature_extractor, frechet_distance, generator_quality, load_classifier
from tests.helpers import quadrant_images, small_cnn


def test_frechet_distance_matches_the_closed_form_for_diagonal_gaussians():
    rng = np.random.default_rng(0)
    mu, sigma_a, sigma_b = np.array([1.0, -2.0, 0.5]), np.array([1.0, 2.0, 0.5]), np.array([2.0, 1.0, 0.5])
    a = rng.standard_normal((200_000, 3)) * sigma_a
    b = mu + rng.standard_normal((200_000, 3)) * sigma_b
    expected = np.sum(mu**2) + np.sum((sigma_a - sigma_b) ** 2)  # 5.25 + 2.0
    assert frechet_distance(a, b) == pytest.approx(expected, rel=0.01)
    assert frechet_distance(b, a) == pytest.approx(frechet_distance(a, b), rel=1e-6)
    assert abs(frechet_distance(a, a)) < 1e-6


@pytest.fixture(scope="module")
def classifier():
    images, labels = quadrant_images(400, seed=5)
    keras.utils.set_random_seed(0)
    model = small_cnn()
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(images.astype(np.float32), labels, epochs=8, batch_size=32, verbose=0)
    return model


def test_a_faithful_generator_scores_better_than_noise(classifier):
    real, real_labels = quadrant_images(400, seed=6)
    by_class = {c: real[real_labels == c] for c in range(4)}

    def faithful(noise, labels):  # draws a real image of the asked class
        return np.stack([by_class[int(c)][i % len(by_class[int(c)])] for i, c in enumerate(labels)])

    def noise_images(noise, labels):
        return np.random.default_rng(len(noise)).integers(0, 256, (len(noise), 16, 16, 1)).astype(np.uint8)

    options = dict(num_samples=400, num_classes=4, seed=1, latent_dim=4, batch_size=100)
    good = generator_quality(faithful, classifier, real, **options)
    bad = generator_quality(noise_images, classifier, real, **options)
    assert good["class_accuracy"] >= 0.95 and bad["class_accuracy"] <= 0.6
    assert good["frechet_distance"] < 0.2 * bad["frechet_distance"]
    assert generator_quality(faithful, classifier, real, **options) == good, "fixed seed, fixed figures"
    noisy = generator_quality(noise_images, classifier, real, **options, bootstrap=8)
    assert {k: v for k, v in noisy.items() if k != "frechet_distance_std"} == bad, "the bootstrap changes no figure"
    assert 0 < noisy["frechet_distance_std"] < 0.2 * bad["frechet_distance"]
    unconditional = generator_quality(noise_images, classifier, real, **{**options, "num_classes": None})
    assert "class_accuracy" not in unconditional and unconditional["num_samples"] == 400


def test_a_classifier_of_other_images_or_classes_is_refused(classifier, tmp_path):
    classifier.save(tmp_path / "classifier.keras")
    assert load_classifier(tmp_path / "classifier.keras", (16, 16, 1), 4).name == classifier.name
    with pytest.raises(ModelError, match=r"must take images \(28, 28, 1\) and predict 10 classes. Received: .*"
                                         r"classifier.keras with input \(16, 16, 1\) and 4 outputs"):
        load_classifier(tmp_path / "classifier.keras", (28, 28, 1), 10)
    with pytest.raises(ModelError, match="Expected a .keras classifier file. Received: .*missing.keras"):
        load_classifier(tmp_path / "missing.keras", (16, 16, 1), 4)


def test_the_feature_model_must_be_a_kvision_classifier():
    inputs = keras.Input((4,))
    with pytest.raises(ModelError, match="final layer named 'logits'"):
        feature_extractor(keras.Model(inputs, keras.layers.Dense(2, name="out")(inputs)))
