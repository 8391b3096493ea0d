"""Generator quality: Fréchet distance on a kvision classifier's features, and class accuracy of samples.

The Fréchet distance (Heusel et al. 2017, https://arxiv.org/abs/1706.08500)
between Gaussians fitted to the features of real and generated images. FID
proper uses Inception-v3 features of ImageNet; here the features are the
penultimate layer of a classifier trained on the *same* dataset with kvision's
classification recipe (e.g. "FID computed with a Fashion-MNIST classifier"),
so the figures compare generators on that dataset only and are not
comparable to published Inception FIDs.
"""

import keras
import numpy as np

from kvision.models.common import logits_layer


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


def generator_quality(sample_fn, classifier, real_images, *, num_samples=10_000, num_classes=None, seed=0,
                      latent_dim, batch_size=500):
    """Fréchet distance and (when conditional) class accuracy of ``num_samples`` generated images.

    Args:
        sample_fn: ``(noise, labels or None) -> uint8 images``.
        classifier: a kvision classifier of the same dataset (raw 0..255 input, ``logits`` layer).
        real_images: uint8 real images (e.g. the test split); the first ``num_samples`` are used.
        num_classes: for a conditional generator, labels cycle through the classes
            and ``class_accuracy`` is the share of samples the classifier assigns to the
            class asked for.
        seed: seeds the noise, so figures are repeatable.
    """
    extractor = feature_extractor(classifier)
    rng = np.random.default_rng(seed)
    fake_features, agree = [], 0
    for start in range(0, num_samples, batch_size):
        count = min(batch_size, num_samples - start)
        noise = rng.standard_normal((count, latent_dim)).astype(np.float32)
        labels = (np.arange(start, start + count) % num_classes).astype(np.int32) if num_classes else None
        features, logits = extractor.predict(sample_fn(noise, labels).astype(np.float32), verbose=0)
        fake_features.append(features)
        if num_classes:
            agree += int(np.sum(np.argmax(logits, -1) == labels))
    real = np.asarray(real_images[:num_samples], np.float32)
    real_features = extractor.predict(real, batch_size=batch_size, verbose=0)[0]
    result = {
        "frechet_distance": frechet_distance(real_features, np.concatenate(fake_features)),
        "num_samples": num_samples,
        "real_images": len(real),
        "seed": seed,
        "feature_model": classifier.name,
    }
    if num_classes:
        result["class_accuracy"] = agree / num_samples
    return result
