"""``python -m kvision.evaluate gan``: an exported generator re-scored from its SavedModel alone."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from kvision.evaluate.__main__ import main
from kvision.evaluate.cas import classification_accuracy_score
from kvision.evaluate.frechet import generator_quality
from kvision.evaluate.rescore_gan import compare, load_generator
from kvision.export import export_generator
from kvision.recipes.common import GENERATOR_METRICS
from kvision.models import build
from kvision.models.gan import to_uint8
from tests.data.writers import write_idx_dataset
from tests.helpers import quadrant_examples, small_cnn

CAS = dict(num_samples=240, epochs=1)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A conditional generator exported with the figures the DCGAN recipe records, its data and classifier."""
    tmp = tmp_path_factory.mktemp("rescore")
    data = write_idx_dataset(tmp / "data", train_count=120, test_count=60, examples=quadrant_examples)
    keras.utils.set_random_seed(0)
    classifier = small_cnn((28, 28, 1), 10)
    classifier.save(tmp / "classifier.keras")
    generator = build("dcgan_generator", (28, 28, 1), 10, latent_dim=8, filters=32)

    def sample(noise, labels):
        return to_uint8(generator.predict([noise, labels], verbose=0)).numpy()

    quality = generator_quality(sample, classifier, data.test[0], num_samples=60, num_classes=10, seed=3, latent_dim=8,
                                bootstrap=10)
    quality.update(classification_accuracy_score(sample, data.test, num_classes=10, latent_dim=8,
                                                 real_classifier=classifier, seed=3, verbose=0, **CAS))
    result = export_generator(generator, tmp / "exports", "gan", tflite=(), version=1, verbose=False,
                              metrics={k: quality[k] for k in GENERATOR_METRICS if k in quality},
                              dataset={"name": "fashion_mnist"})
    return tmp, data, result.path, generator, quality


def test_the_served_generator_is_sampled_through_its_signature(exported):
    _, _, path, generator, _ = exported
    sample, latent_dim, conditional, image_shape = load_generator(path)
    assert (latent_dim, conditional, image_shape) == (8, True, (28, 28, 1))
    noise = np.random.default_rng(0).standard_normal((5, 8)).astype(np.float32)
    labels = np.array([0, 3, 5, 7, 9], np.int32)
    images = sample(noise, labels)
    assert images.dtype == np.uint8
    expected = to_uint8(generator([noise, labels], training=False)).numpy()
    assert np.abs(images.astype(int) - expected).max() <= 1


def test_the_cli_rescores_the_export_and_agrees_with_what_was_recorded(exported, capsys):
    tmp, data, path, _, quality = exported
    report = main(["gan", "--model", str(path), "--classifier", str(tmp / "classifier.keras"), "--data-dir",
                   str(data.path), "--cas", "--cas-samples", str(CAS["num_samples"]), "--cas-epochs", str(CAS["epochs"])])
    out = capsys.readouterr().out
    assert json.loads(out[out.index('{\n  "model"'):]) == json.loads(json.dumps(report)), "the report ends stdout"
    assert report["agree"] is True
    rescored, comparison = report["rescored"], report["comparison"]
    assert rescored["num_samples"] == 60 and rescored["seed"] == 3, "the recorded sample count and seed"
    assert set(comparison) == {"frechet_distance", "class_accuracy", "cas", "cas_real_accuracy"}
    assert rescored["frechet_distance"] == pytest.approx(quality["frechet_distance"], rel=0.01)
    assert abs(rescored["class_accuracy"] - quality["class_accuracy"]) <= 1 / 60
    assert rescored["cas_real_accuracy"] == quality["cas_real_accuracy"], "the given classifier, measured again"
    assert comparison["class_accuracy"]["tolerance"] > 0 and "3 standard errors" in report["tolerance"]


def test_figures_outside_the_sampling_noise_disagree():
    rescored = {"num_samples": 10_000, "frechet_distance": 6.0, "frechet_distance_std": 0.05, "class_accuracy": 0.90}
    recorded = {"num_samples": 10_000, "frechet_distance": 5.0, "class_accuracy": 0.905}
    comparison = compare(rescored, recorded, test_images=10_000)
    assert comparison["frechet_distance"]["tolerance"] == pytest.approx(3 * np.hypot(0.05, 0.05))
    assert not comparison["frechet_distance"]["agree"], "1.0 apart, tolerance 0.21"
    # two-proportion standard error: sqrt(p (1 − p) · 2 / n) at p = 0.9025, n = 10 000 → 0.0042; 3× = 0.0126
    assert comparison["class_accuracy"]["tolerance"] == pytest.approx(0.01257, abs=1e-4)
    assert comparison["class_accuracy"]["agree"]


def test_a_path_that_is_not_a_saved_model_gets_one_line(tmp_path):
    with pytest.raises(SystemExit) as done:
        main(["gan", "--model", str(tmp_path)])
    assert done.value.code == (
        "error: Expected an exported SavedModel version directory (<export-dir>/<name>/<version>/ holding "
        f"saved_model.pb). Received: {tmp_path}"
    )


def test_a_saved_model_without_a_generator_signature_gets_one_line(tmp_path):
    module = tf.Module()
    module.double = tf.function(lambda x: {"y": 2 * x}, input_signature=[tf.TensorSpec((None,), tf.float32, name="x")])
    tf.saved_model.save(module, str(tmp_path), signatures={"serving_default": module.double})
    with pytest.raises(SystemExit) as done:
        main(["gan", "--model", str(tmp_path)])
    message = done.value.code
    assert message.startswith("error: Expected a generator's serving_default signature: noise (and label) -> uint8 "
                              f"images. Received: {tmp_path} with signatures ['serving_default']")
    assert "\n" not in message


def test_an_unknown_subcommand_names_the_known_ones():
    with pytest.raises(SystemExit) as done:
        main(["vae"])
    assert done.value.code == "error: Expected a command: g2p, gan (--help lists them). Received: vae"
