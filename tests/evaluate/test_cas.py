"""Classification accuracy score: a classifier trained on samples only, tested on real images."""


import numpy as np
import pytest

from kvision.evaluate.cas import (CLASSIFIER_SETTINGS, EPOCHS, VALIDATION_SHARE, classification_accuracy_score,
                                  generated_set)
from kvision.evaluate.classification import accuracy
from tests.helpers import quadrant_images, small_cnn

# Small batches for a tiny set: one epoch of 41 steps learns the quadrants (an epoch's end, with its checkpoints and
# figures, costs more than its steps); no flips: a mirrored quadrant image is another class.
OPTIONS = dict(num_classes=4, latent_dim=2, num_samples=360, epochs=1, batch_size=8, flip=False)


def test_the_classifier_is_trained_as_the_fashion_mnist_recipe_trains_its_classic_cnn():
    from kvision.recipes import fashion_mnist

    args = fashion_mnist.settings(["--preset", "classic"])
    assert args.model == "cnn" and args.epochs == EPOCHS and args.seed == 0 and args.tta == "none"
    assert round(VALIDATION_SHARE * 60_000) == args.validation_size == 5000
    assert CLASSIFIER_SETTINGS == {
        "batch_size": args.batch_size, "optimizer": args.optimizer, "learning_rate": args.lr,
        "momentum": args.momentum, "weight_decay": args.weight_decay, "schedule": args.schedule,
        "warmup_epochs": args.warmup_epochs, "label_smoothing": args.label_smoothing,
        "crop_padding": args.crop_padding, "flip": args.flip, "cutout": args.cutout,
        "random_erasing": args.random_erasing,
    }


def test_the_generated_set_asks_for_every_class_equally_often():
    asked = []

    def generator(noise, labels):  # image value = the label it was drawn for
        asked.append(labels.copy())
        return np.broadcast_to(labels[:, None, None, None], (len(noise), 4, 4, 1)).astype(np.uint8)

    images, labels = generated_set(generator, 1000, num_classes=10, latent_dim=3, batch_size=300)
    assert [len(batch) for batch in asked] == [300, 300, 300, 100]
    assert np.bincount(np.concatenate(asked), minlength=10).tolist() == [100] * 10
    assert labels.dtype == np.int64 and labels.tolist() == np.concatenate(asked).tolist()
    np.testing.assert_array_equal(images[:, 0, 0, 0], labels)
    uneven = generated_set(generator, 1003, num_classes=10, latent_dim=3)[1]
    assert np.bincount(uneven).tolist() == [101] * 3 + [100] * 7


@pytest.fixture(scope="module")
def quadrants():
    """Real ``(train, test)`` splits of 16×16 quadrant images (4 classes)."""
    return quadrant_images(600, seed=11), quadrant_images(200, seed=12)


def drawing(train, shift):
    """A stand-in generator: real training images of class (asked + ``shift``) mod 4."""
    images, labels = train
    by_class = [images[labels == c] for c in range(4)]
    rng = np.random.default_rng(0)

    def sample(noise, asked):
        return np.stack([by_class[(c + shift) % 4][rng.integers(len(by_class[(c + shift) % 4]))] for c in asked])

    return sample


def test_a_generator_of_faithful_samples_scores_like_real_data(quadrants):
    train, test = quadrants
    result = classification_accuracy_score(drawing(train, 0), test, real_train=train, **OPTIONS)
    assert result["cas"] >= 0.95 and result["cas_real_accuracy"] >= 0.95
    assert result["cas_gap"] == pytest.approx(result["cas_real_accuracy"] - result["cas"]) and abs(result["cas_gap"]) <= 0.05
    assert result["cas_reference"] == "trained" and result["cas_samples"] == 360 and result["cas_epochs"] == 1


def test_a_generator_of_the_wrong_class_scores_zero(quadrants):
    train, test = quadrants
    given = small_cnn()  # untrained: its own test accuracy is the reference, whatever it is
    result = classification_accuracy_score(drawing(train, 1), test, real_classifier=given, **OPTIONS)
    assert result["cas"] <= 0.05, "trained on class c+1's images labelled c, it names every real image wrongly"
    assert result["cas_reference"] == "given" and result["cas_real_accuracy"] == accuracy(given, *test)
