"""Generator quality: Fréchet distance on a kvision classifier's features, and class accuracy of samples.

The Fréchet distance (Heusel et al. 2017, https://arxiv.org/abs/1706.08500)
between Gaussians fitted to the features of real and generated images. FID
proper uses Inception-v3 features of ImageNet; here the features are the
penultimate layer of a classifier trained on the *same* dataset with kvision's
classification recipe (e.g. "FID computed with a Fashion-MNIST classifier"),
so the figures compare generators on that dataset only and are not
comparable to published Inception FIDs.
"""

from pathlib import Path

import keras
import numpy as np

from kvision.errors import ModelError
from kvision.models.common import logits_layer
from kvision.saving import load_model


def default_classifier_path(dataset):
    """Where the classification recipe leaves its CNN for ``dataset``: the feature classifier when none is named."""
    return Path(f"runs/{dataset}_cnn/checkpoints/best.keras")


def load_classifier(path, image_shape, num_classes):
    """The ``.keras`` classifier at ``path``, checked to take ``image_shape`` images and predict ``num_classes``."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"Expected a .keras classifier file. Received: {path}")
    classifier = load_model(path)
    if tuple(classifier.input_shape[1:]) != tuple(image_shape) or classifier.output_shape[-1] != num_classes:
        raise ModelError(
            f"The classifier must take images {tuple(image_shape)} and predict {num_classes} classes. "
            f"Received: {path} with input {classifier.input_shape[1:]} and {classifier.output_shape[-1]} outputs"
        )
    return classifier


def feature_extractor(classifier):
    """A model mapping raw 0..255 images to ``classifier``'s penultimate features (the input of ``logits``)."""
    logits = logits_layer(classifier)
    return keras.Model(classifier.inputs, [logits.input, logits.output], name="features_and_logits")


def frechet_distance(features_a, features_b):
    """‖μa − μb‖² + Tr(Σa + Σb − 2 (Σa Σb)^½) between two feature sets ``[N, D]``.

    Tr((Σa Σb)^½) is the sum of square roots of the eigenvalues of
    Σa^½ Σb Σa^½, a symmetric PSD matrix, so it is computed with ``eigh``
    without complex round-off.
    """
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    values, vectors = np.linalg.eigh(cov_a)
    sqrt_a = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    product = np.linalg.eigvalsh(sqrt_a @ cov_b @ sqrt_a)
    trace_sqrt = np.sqrt(np.clip(product, 0, None)).sum()
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_sqrt)


def generated_batches(sample_fn, num_samples, *, num_classes=None, latent_dim, seed=0, batch_size=500):
    """``(uint8 images, int32 labels or None)`` batches of ``num_samples`` samples of ``sample_fn``.

    The noise is drawn from ``seed``; labels ask for the classes in turn
    (0, 1, …, 0, …), so the figures of a seed are repeatable and every class
    is asked for equally often (±1).
    """
    rng = np.random.default_rng(seed)
    for start in range(0, num_samples, batch_size):
        count = min(batch_size, num_samples - start)
        noise = rng.standard_normal((count, latent_dim)).astype(np.float32)
        labels = (np.arange(start, start + count) % num_classes).astype(np.int32) if num_classes else None
        yield sample_fn(noise, labels), labels


def generator_quality(sample_fn, classifier, real_images, *, num_samples=10_000, num_classes=None, seed=0,
                      latent_dim, batch_size=500, bootstrap=0):
    """Fréchet distance and (when conditional) class accuracy of ``num_samples`` generated images.

    Args:
        sample_fn: ``(noise, labels or None) -> uint8 images``.
        classifier: a kvision classifier of the same dataset (raw 0..255 input, ``logits`` layer).
        real_images: uint8 real images (e.g. the test split); the first ``num_samples`` are used.
        num_classes: for a conditional generator, labels cycle through the classes
            and ``class_accuracy`` is the share of samples the classifier assigns to the
            class asked for.
        seed: seeds the noise, so figures are repeatable.
        bootstrap: if positive, ``frechet_distance_std``: the standard deviation
            of the distance over this many resamples (with replacement) of the
            generated features, the distance's sampling noise.
    """
    extractor = feature_extractor(classifier)
    fake_features, agree = [], 0
    for images, labels in generated_batches(sample_fn, num_samples, num_classes=num_classes, latent_dim=latent_dim,
                                            seed=seed, batch_size=batch_size):
        features, logits = extractor.predict(images.astype(np.float32), verbose=0)
        fake_features.append(features)
        if num_classes:
            agree += int(np.sum(np.argmax(logits, -1) == labels))
    real = np.asarray(real_images[:num_samples], np.float32)
    real_features = extractor.predict(real, batch_size=batch_size, verbose=0)[0]
    fake_features = np.concatenate(fake_features)
    result = {
        "frechet_distance": frechet_distance(real_features, fake_features),
        "num_samples": num_samples,
        "real_images": len(real),
        "seed": seed,
        "feature_model": classifier.name,
    }
    if num_classes:
        result["class_accuracy"] = agree / num_samples
    if bootstrap:
        rng = np.random.default_rng(seed)
        resampled = [frechet_distance(real_features, fake_features[rng.integers(0, num_samples, num_samples)])
                     for _ in range(bootstrap)]
        result["frechet_distance_std"] = float(np.std(resampled))
    return result
