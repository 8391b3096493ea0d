"""Classification accuracy score (CAS) of a conditional generator.

Ravuri & Vinyals 2019 (https://arxiv.org/abs/1905.10887): a classifier
trained only on generated samples, balanced over the classes, is tested on
the real test split; beside it, the same classifier trained on real data.
The gap says how much of what a classifier needs the generator reproduces:
samples that are sharp but of too few kinds per class (or of the wrong
class) score well on class accuracy and poorly here.

The classifier is kvision's VGG-style ``cnn`` trained by ``fit_classifier``
as ``recipes/fashion_mnist.py --preset classic`` trains it (the recipe's
default until the faster ``cnn_fast`` replaced it; ``CLASSIFIER_SETTINGS``,
``EPOCHS``; 1/12 of the training examples held out for choosing the best
epoch, the 5 000 of 60 000 that recipe holds out — here generated ones, so
no real image is seen).
"""

import tempfile

import numpy as np

from kvision.data import channel_stats, train_validation_split
from kvision.errors import ModelError
from kvision.evaluate.classification import accuracy
from kvision.evaluate.frechet import generated_batches
from kvision.models import build
from kvision.models.common import is_positive_int, require
from kvision.train.engine import fit_classifier

# The training settings of recipes/fashion_mnist.py --preset classic (tests/evaluate/test_cas.py keeps them equal).
CLASSIFIER_SETTINGS = {
    "batch_size": 128,
    "optimizer": "sgd",
    "learning_rate": 0.05,
    "momentum": 0.9,
    "weight_decay": 1e-4,
    "schedule": "cosine",
    "warmup_epochs": 0.0,
    "label_smoothing": 0.0,
    "crop_padding": 0,
    "flip": True,
    "cutout": 0,
    "random_erasing": 0.0,
}
EPOCHS = 20
VALIDATION_SHARE = 1 / 12


def generated_set(sample_fn, num_samples, *, num_classes, latent_dim, seed=0, batch_size=500):
    """``num_samples`` uint8 samples and the int64 labels asked for: the classes in turn, N/classes each (±1)."""
    batches = list(generated_batches(sample_fn, num_samples, num_classes=num_classes, latent_dim=latent_dim, seed=seed,
                                     batch_size=batch_size))
    images, labels = zip(*batches)
    return np.concatenate(images), np.concatenate(labels).astype(np.int64)


def train_classifier(images, labels, *, num_classes, epochs=EPOCHS, validation_share=VALIDATION_SHARE, seed=0,
                     strategy=None, **settings):
    """The ``cnn`` trained on uint8 ``images`` as ``fashion_mnist.py --preset classic`` trains it; ``settings`` override.

    ``validation_share`` of the examples is held out to pick the best epoch.
    The run's files go to a temporary directory, removed afterwards.
    """
    train, validation = train_validation_split(images, labels, validation_share, seed=seed)
    mean, std = channel_stats(train[0])
    with tempfile.TemporaryDirectory(prefix="kvision-cas-") as run_dir:
        result = fit_classifier(
            lambda: build("cnn", images.shape[1:], num_classes, mean=mean, std=std),
            train, validation if len(validation[0]) else None, run_dir=run_dir, epochs=epochs, seed=seed,
            strategy=strategy, **{**CLASSIFIER_SETTINGS, **settings},
        )
    return result.model


def classification_accuracy_score(sample_fn, test, *, num_classes, latent_dim, real_train=None, real_classifier=None,
                                  num_samples=60_000, epochs=EPOCHS, validation_share=VALIDATION_SHARE, seed=0,
                                  strategy=None, **settings):
    """CAS of a conditional generator, and the test accuracy of the same classifier trained on real data.

    Args:
        sample_fn: ``(noise, labels) -> uint8 images``, as for ``generator_quality``.
        test: the real ``(uint8 images, labels)`` test split.
        num_classes, latent_dim: of the generator.
        real_train: the real ``(images, labels)`` training split, to train the
            reference classifier when ``real_classifier`` is not given.
        real_classifier: an already trained classifier of the same data (e.g.
            the one ``recipes/fashion_mnist.py`` leaves with ``--preset classic``): its test accuracy is
            the reference, with no second training.
        num_samples: generated training samples, balanced over the classes.
        epochs, validation_share, seed, strategy, settings: as for ``train_classifier``.

    Returns:
        ``{"cas", "cas_real_accuracy", "cas_gap"}`` (accuracies in [0, 1],
        gap = real − CAS) with ``cas_samples``, ``cas_epochs`` and
        ``cas_reference`` ("given" or "trained").
    """
    require(is_positive_int(num_samples), "num_samples must be a positive integer.", num_samples=num_samples)
    if real_train is None and real_classifier is None:
        raise ModelError("The reference needs real_train (to train it) or real_classifier (already trained). "
                         "Received: neither")
    options = dict(num_classes=num_classes, epochs=epochs, validation_share=validation_share, seed=seed,
                   strategy=strategy, **settings)
    images, labels = generated_set(sample_fn, num_samples, num_classes=num_classes, latent_dim=latent_dim, seed=seed)
    cas = accuracy(train_classifier(images, labels, **options), *test)
    reference = real_classifier if real_classifier is not None else train_classifier(*real_train, **options)
    real_accuracy = accuracy(reference, *test)
    return {
        "cas": cas,
        "cas_real_accuracy": real_accuracy,
        "cas_gap": real_accuracy - cas,
        "cas_samples": num_samples,
        "cas_epochs": epochs,
        "cas_reference": "given" if real_classifier is not None else "trained",
    }
