"""FGSM and PGD stay in the ε-ball and raise the loss; AdversarialTraining trains through the engine."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kvision.errors import ModelError
from kvision.train import AdversarialTraining, fgsm, fit_classifier, pgd
from tests.helpers import quadrant_images, run_on_two_cpus, small_cnn

TRAIN = quadrant_images(128, seed=1)
VAL = quadrant_images(32, seed=2)
plain_cnn = lambda: small_cnn(batch_norm=False, dropout=0.0, dense_dropout=0.0)  # noqa: E731
# No TensorBoard figures: tests/train/test_tensorboard.py checks them.
FIT = dict(batch_size=32, learning_rate=0.05, schedule="constant", crop_padding=0, flip=False, seed=3, figure_examples=0,
           verbose=0)


@pytest.fixture(scope="module")
def trained():
    """A small CNN that classifies the quadrant images well; without BatchNorm or dropout, training mode is inference."""
    keras.utils.set_random_seed(0)
    model = plain_cnn()
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9), loss)
    model.fit(TRAIN[0].astype(np.float32), TRAIN[1], batch_size=32, epochs=3, verbose=0)
    return model


def mean_loss(model, images, labels):
    logits = model(tf.cast(images, tf.float32), training=False)
    return float(np.mean(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)))


@pytest.mark.parametrize("attack", ["fgsm", "pgd"])
@pytest.mark.parametrize("epsilon", [0.03, 0.1])
def test_attacks_stay_in_the_ball_and_the_pixel_range_and_raise_the_loss(trained, attack, epsilon):
    images, labels = VAL
    if attack == "fgsm":
        adversarial = fgsm(trained, images, labels, epsilon).numpy()
    else:
        adversarial = pgd(trained, images, labels, epsilon, steps=5, seed=0).numpy()
    assert adversarial.dtype == np.float32
    assert adversarial.min() >= 0.0 and adversarial.max() <= 255.0
    # ε is a fraction of the 0..255 range; float32 rounding of 255·ε is the only slack.
    assert np.abs(adversarial - images).max() <= epsilon * 255 * (1 + 1e-6)
    assert mean_loss(trained, adversarial, labels) > 1.2 * mean_loss(trained, images, labels)


def test_fgsm_moves_every_pixel_with_a_gradient_by_exactly_epsilon_unless_clipped(trained):
    images, labels = VAL
    adversarial = fgsm(trained, images, labels, 0.05).numpy()
    moved = np.abs(adversarial - images)
    clipped = (adversarial == 0) | (adversarial == 255)
    np.testing.assert_allclose(moved[(moved > 0) & ~clipped], 0.05 * 255, rtol=1e-6)
    assert (moved > 0).mean() > 0.5, "most pixels of a CNN's input have a non-zero gradient"


def test_pgd_is_at_least_as_strong_as_fgsm_on_the_same_loss(trained):
    images, labels = VAL
    strong = pgd(trained, images, labels, 0.1, steps=10, random_start=False)
    assert mean_loss(trained, strong, labels) > mean_loss(trained, fgsm(trained, images, labels, 0.1), labels)


def test_zero_epsilon_returns_the_input_and_one_hot_labels_equal_class_ids(trained):
    images, labels = VAL
    for attack in (fgsm(trained, images, labels, 0.0), pgd(trained, images, labels, 0.0, steps=3, seed=1)):
        np.testing.assert_array_equal(attack.numpy(), images.astype(np.float32))
    one_hot = np.eye(4, dtype=np.float32)[labels]
    from_one_hot = pgd(trained, images, one_hot, 0.05, steps=3, seed=7)
    np.testing.assert_array_equal(from_one_hot.numpy(), pgd(trained, images, labels, 0.05, steps=3, seed=7).numpy())


def test_pgd_runs_in_a_tf_function_with_epsilon_as_a_tensor(trained):
    images, labels = VAL
    attack = tf.function(lambda x, y, eps: pgd(trained, x, y, eps, steps=3, random_start=False))
    np.testing.assert_array_equal(
        attack(tf.constant(images, tf.float32), tf.constant(labels), tf.constant(0.05)).numpy(),
        pgd(trained, images, labels, 0.05, steps=3, random_start=False).numpy(),
    )


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(epsilon=-0.1), "epsilon is a fraction of the 0..255 range and must be ≥ 0. Received: epsilon=-0.1"),
        (dict(steps=0), "steps must be a positive integer. Received: steps=0"),
        (dict(step_size=-1.0), "step_size is a fraction of the 0..255 range and must be ≥ 0. Received: step_size=-1.0"),
    ],
)
def test_bad_attack_settings_are_clear_errors(options, message):
    with pytest.raises(ModelError, match=message):
        AdversarialTraining(small_cnn(), **options)


def test_train_step_learns_from_pgd_examples_and_test_step_is_clean(trained):
    """With a zero learning rate, the training loss is the loss on PGD examples; evaluation's is the clean loss."""
    images, labels = VAL
    wrapper = AdversarialTraining(trained, epsilon=0.1, steps=4, random_start=False)
    wrapper.compile(optimizer=keras.optimizers.SGD(0.0), loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    one_hot = np.eye(4, dtype=np.float32)[labels]
    adversarial = pgd(trained, images, labels, 0.1, steps=4, random_start=False)
    train_loss = wrapper.train_on_batch(images.astype(np.float32), one_hot)
    assert train_loss == pytest.approx(mean_loss(trained, adversarial, labels), rel=1e-4)
    assert wrapper.test_on_batch(images.astype(np.float32), one_hot) == pytest.approx(
        mean_loss(trained, images, labels), rel=1e-4
    )
    assert train_loss > 1.2 * mean_loss(trained, images, labels)


def test_fit_classifier_trains_the_wrapped_network_and_checkpoints_it_alone(tmp_path):
    wrap = lambda network: AdversarialTraining(network, epsilon=0.05, steps=3)  # noqa: E731
    result = fit_classifier(small_cnn, TRAIN, VAL, run_dir=tmp_path, epochs=2, wrap=wrap, **FIT)
    assert result.history["loss"][-1] < 0.5 * result.history["loss"][0]
    assert result.history["val_accuracy"][-1] >= 0.9
    assert not isinstance(result.model, AdversarialTraining)
    best = keras.models.load_model(result.best_checkpoint)
    assert type(best).__name__ == "Functional" and best.get_layer("logits").units == 4
    for saved, trained_weights in zip(best.get_weights(), result.model.get_weights()):
        np.testing.assert_array_equal(saved, trained_weights)


TWO_REPLICAS_SCRIPT = """
import numpy as np
from kvision.train import AdversarialTraining, fit_classifier, get_strategy
from tests.helpers import small_cnn
from tests.train.test_adversarial import FIT, TRAIN, VAL

result = fit_classifier(
    small_cnn, TRAIN, VAL, run_dir=sys.argv[1], epochs=2, mixed_precision=True,
    wrap=lambda network: AdversarialTraining(network, epsilon=0.05, steps=3),
    strategy=get_strategy(["/cpu:0", "/cpu:1"]), **{**FIT, "batch_size": 16},
)
print(json.dumps({
    "replicas": result.strategy.num_replicas_in_sync,
    "conv_dtype": result.model.get_layer("block1_conv1_conv").compute_dtype,
    "loss": result.history["loss"],
    "finite": all(bool(np.isfinite(w).all()) for w in result.model.get_weights()),
}))
"""


@pytest.mark.slow
def test_adversarial_training_under_mixed_precision_on_two_replicas(tmp_path):
    """In its own process: see ``tests.helpers.run_on_two_cpus``."""
    result = run_on_two_cpus(TWO_REPLICAS_SCRIPT, tmp_path)
    assert result["replicas"] == 2
    assert result["conv_dtype"] == "float16"
    assert result["loss"][-1] < 0.5 * result["loss"][0]
    assert result["finite"]
