"""SimCLR: the NT-Xent loss against NumPy, training, checkpoints, strategies (arrays and a stream), the linear probe."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from kvision.errors import DataError, ModelError
from kvision.models.common import classifier_backbone
from kvision.train.simclr import SimCLR, contrastive_accuracy, fit_simclr, linear_probe, nt_xent_loss
from tests.helpers import quadrant_images, run_on_two_cpus, small_cnn

IMAGES, LABELS = quadrant_images(64, seed=1)


def small_encoder():
    """The small CNN without its logits; no BatchNorm or dropout, so 1 and 2 replicas compute the same."""
    return classifier_backbone(small_cnn(batch_norm=False, dropout=0.0, dense_dropout=0.0))


def reference_nt_xent(z1, z2, temperature):
    """NT-Xent written out anchor by anchor, as in the paper's Algorithm 1."""
    z = np.concatenate([z1, z2]).astype(np.float64)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    n = len(z1)
    losses = []
    for i in range(2 * n):
        others = [k for k in range(2 * n) if k != i]
        logits = np.array([z[i] @ z[k] / temperature for k in others])
        positive = others.index((i + n) % (2 * n))
        losses.append(np.log(np.sum(np.exp(logits))) - logits[positive])
    return np.mean(losses)


@pytest.mark.parametrize("temperature", [0.05, 0.1, 0.5, 1.0])
def test_nt_xent_matches_a_direct_numpy_computation(temperature):
    rng = np.random.default_rng(int(temperature * 100))
    z1, z2 = rng.normal(size=(6, 5)).astype(np.float32), rng.normal(size=(6, 5)).astype(np.float32)
    expected = reference_nt_xent(z1, z2, temperature)
    np.testing.assert_allclose(nt_xent_loss(z1, z2, temperature).numpy(), expected, rtol=1e-5)


def test_nt_xent_ignores_the_scale_of_the_projections():
    z1, z2 = np.random.default_rng(0).normal(size=(2, 4, 3)).astype(np.float32)
    np.testing.assert_allclose(nt_xent_loss(z1, z2).numpy(), nt_xent_loss(7 * z1, 0.1 * z2).numpy(), rtol=1e-5)


def test_contrastive_accuracy_counts_anchors_whose_nearest_view_is_their_pair():
    z = np.random.default_rng(0).normal(size=(8, 16)).astype(np.float32)
    assert contrastive_accuracy(z, z).numpy() == 1.0
    # Views paired with the wrong image: each anchor's nearest view is its copy in the other list, never its positive.
    assert contrastive_accuracy(z, np.roll(z, 1, axis=0)).numpy() == 0.0
    assert nt_xent_loss(z, z).numpy() < nt_xent_loss(z, np.roll(z, 1, axis=0)).numpy()


def test_training_lowers_the_loss_and_checkpoints_hold_the_encoder_alone(tmp_path):
    result = fit_simclr(small_encoder, IMAGES, run_dir=tmp_path, epochs=4, batch_size=32, learning_rate=3e-3,
                        seed=1, verbose=0)
    losses = result.history["loss"]
    assert losses[-1] < losses[0] and all(np.isfinite(losses))
    assert len(result.history["contrastive_accuracy"]) == 4
    assert result.model.name == "cnn_backbone" and result.model.output_shape == (None, 32)

    saved = keras.models.load_model(tmp_path / "checkpoints" / "last.keras")
    assert saved.output_shape == (None, 32)
    assert not [layer.name for layer in saved.layers if "projection" in layer.name]
    for a, b in zip(saved.get_weights(), result.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert (tmp_path / "checkpoints" / "best.keras").exists()

    again = fit_simclr(small_encoder, IMAGES, run_dir=tmp_path, epochs=4, batch_size=32, seed=1, verbose=0)
    assert again.history == {}, "a finished run is loaded, not trained again"
    for a, b in zip(again.model.get_weights(), result.model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_evaluate_scores_held_out_view_pairs():
    model = SimCLR(small_encoder(), projection_dim=8, temperature=0.5)
    model.compile()
    images = IMAGES[:16].astype(np.float32)
    same = tf.data.Dataset.from_tensors((images, images))  # identical views: every anchor finds its pair
    scores = model.evaluate(same, verbose=0, return_dict=True)
    z = model.projection(model(images))
    assert scores["contrastive_accuracy"] == 1.0
    np.testing.assert_allclose(scores["loss"], nt_xent_loss(z, z, 0.5).numpy(), rtol=1e-5)


TWO_REPLICAS_SCRIPT = """
from pathlib import Path
import numpy as np
from kvision.train import get_strategy
from kvision.train.simclr import fit_simclr
from tests.train.test_engine_streams import CountSteps
from tests.train.test_simclr import IMAGES, small_encoder
from tests.train.test_simclr_stream import streamed_folder

out = Path(sys.argv[1])
pair = get_strategy(["/cpu:0", "/cpu:1"])  # one strategy for both runs: a second would reuse its collective keys
common = dict(epochs=1, optimizer="sgd", learning_rate=0.05, schedule="constant", weight_decay=0.0, seed=1, verbose=0)
one = fit_simclr(small_encoder, IMAGES, run_dir=out / "one", batch_size=32, strategy=get_strategy(["/cpu:0"]), **common)
two = fit_simclr(small_encoder, IMAGES, run_dir=out / "two", batch_size=16, strategy=pair, **common)
split, _ = streamed_folder(out / "data")
counter = CountSteps()
streamed = fit_simclr(small_encoder, split, run_dir=out / "stream", epochs=1, batch_size=6, image_shape=(16, 16, 1),
                      strategy=pair, callbacks=[counter], seed=1, verbose=0)
print(json.dumps({
    "replicas": two.strategy.num_replicas_in_sync,
    "loss": [one.history["loss"], two.history["loss"]],
    "weights": [[w.tolist() for w in run.model.get_weights()] for run in (one, two)],
    "stream": {"replicas": streamed.strategy.num_replicas_in_sync, "steps": counter.steps,
               "iterations": int(counter.model.optimizer.iterations.numpy()), "loss": streamed.history["loss"]},
}))
"""


@pytest.fixture(scope="module")
def two_replicas(tmp_path_factory):
    """SimCLR on 1 and 2 replicas of arrays, and on 2 replicas of a streamed folder: one process for the three runs.

    In its own process: see ``tests.helpers.run_on_two_cpus``.
    """
    return run_on_two_cpus(TWO_REPLICAS_SCRIPT, tmp_path_factory.mktemp("simclr_replicas"))


@pytest.mark.slow
def test_two_replicas_match_one_device(two_replicas):
    """Negatives are gathered across replicas and the head's BatchNorm is synchronised: the global batch decides."""
    one_loss, two_loss = two_replicas["loss"]
    assert two_replicas["replicas"] == 2 and np.all(np.isfinite(two_loss))
    np.testing.assert_allclose(two_loss, one_loss, rtol=1e-4)
    for a, b in zip(*two_replicas["weights"]):
        np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-3, atol=1e-5)


@pytest.mark.slow
def test_two_replicas_train_on_a_stream(two_replicas):
    """Each of 2 replicas gets 6 images a step of the 24-image folder: a global batch of 12, so 24 // 12 steps an epoch."""
    run = two_replicas["stream"]
    assert run["replicas"] == 2 and run["steps"] == [2] and run["iterations"] == 2
    assert np.isfinite(run["loss"][0]) and run["loss"][0] > 0


def test_mixed_precision_scales_the_loss(tmp_path):
    result = fit_simclr(lambda: classifier_backbone(small_cnn()), IMAGES, run_dir=tmp_path, epochs=1, batch_size=32,
                        mixed_precision=True, seed=2, verbose=0)
    assert np.isfinite(result.history["loss"][0])
    assert result.model.get_layer("block1_conv1_conv").compute_dtype == "float16"
    assert keras.mixed_precision.dtype_policy().name == "float32", "the global policy is restored"


def test_linear_probe_reads_the_features_and_keeps_the_encoder_frozen():
    train, test = quadrant_images(128, seed=2), quadrant_images(64, seed=3)
    encoder = small_encoder()
    before = encoder.get_weights()
    accuracy = linear_probe(encoder, train, test, epochs=8, batch_size=32, learning_rate=1e-2)
    constant = np.bincount(test[1]).max() / len(test[1])
    assert accuracy >= 0.9 > constant + 0.3
    for a, b in zip(before, encoder.get_weights()):
        np.testing.assert_array_equal(a, b)

    inputs = keras.Input((16, 16, 1))
    blind = keras.Model(inputs, layers.Dense(8, kernel_initializer="zeros")(layers.Flatten()(inputs)))
    blind_accuracy = linear_probe(blind, train, test, epochs=2, batch_size=64)
    assert blind_accuracy <= constant + 1e-6, "no features, no better than a constant"


def test_bad_input_is_refused_with_what_was_received(tmp_path):
    with pytest.raises(ModelError, match=r"feature vector.*Received: output_shape=\(None, 4, 4, 16\)"):
        inputs = keras.Input((8, 8, 1))
        SimCLR(keras.Model(inputs, layers.Conv2D(16, 3, strides=2, padding="same")(inputs)))
    with pytest.raises(ModelError, match="temperature must be positive. Received: temperature=0"):
        SimCLR(small_encoder(), temperature=0)
    with pytest.raises(DataError, match="fit_simclr: expected uint8 images"):
        fit_simclr(small_encoder, IMAGES.astype(np.float32), run_dir=tmp_path, epochs=1, batch_size=8)
