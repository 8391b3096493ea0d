"""Transfer learning: backbones from every source, stage freezing, frozen BatchNorm, two-phase fine-tuning."""

import keras
import numpy as np
import pytest

from kvision.errors import ModelError
from kvision.models import build_cifar_resnet
from kvision.models.common import classifier_backbone
from kvision.train import fit_classifier
from kvision.train.engine import build_with_policy
from kvision.train.finetune import backbone_stages, fine_tune, load_backbone, set_trainable, with_new_head
from tests.helpers import quadrant_images, small_cnn

TRAIN = quadrant_images(128, seed=1)
TEST = quadrant_images(64, seed=2)
QUICK = dict(crop_padding=0, flip=False, seed=3, batch_size=32, verbose=0)
IMAGES = TEST[0][:8].astype("float32")


def weight_layers(model):
    """Names of the layers whose weights the optimizer updates."""
    return {layer.name for layer in model.layers if layer.trainable_weights}


def features(model, images):
    """``model``'s outputs in inference mode, called eagerly (faster than ``predict`` for a few images)."""
    return model(images, training=False).numpy()


def batch_norms(model):
    return [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]


def test_resnet_stages_and_what_each_setting_unfreezes():
    model = build_cifar_resnet((16, 16, 1), 3, depth=8, width=4)
    stages = backbone_stages(model)
    assert list(stages) == ["stem", "stage1", "stage2", "stage3"]
    assert [layer.name for layer in stages["stem"]] == ["image", "preprocess", "stem_conv", "stem_bn", "stem_relu"]
    assert stages["stage3"][-1].name == "avg_pool", "layers after the last stage belong to it"
    convs = {layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D)}

    set_trainable(model, 1)
    assert weight_layers(model) == {name for name in convs if name.startswith("stage3_")} | {"logits"}
    set_trainable(model, 2)
    assert weight_layers(model) == {name for name in convs if name.startswith(("stage2_", "stage3_"))} | {"logits"}
    for setting in ("all", 4, 10):
        set_trainable(model, setting)
        assert weight_layers(model) == convs | {"logits"}, setting
    for setting in ("head", 0):
        set_trainable(model, setting)
        assert weight_layers(model) == {"logits"}
    assert batch_norms(model) and not any(layer.trainable for layer in batch_norms(model))


def test_cnn_stages_put_the_hidden_dense_layer_in_the_last_block():
    model = small_cnn()
    assert list(backbone_stages(model)) == ["stem", "block1", "block2"]
    set_trainable(model, 1)
    assert weight_layers(model) == {"block2_conv1_conv", "head_dense", "logits"}
    # The conv's kernel (no bias before BN), the dense layers' kernels and biases; BN's gamma and beta are frozen.
    assert len(model.trainable_weights) == 5


@pytest.mark.parametrize("setting", ["some", -1, 1.5, True, None])
def test_set_trainable_rejects_other_settings(setting):
    with pytest.raises(ModelError, match=rf"'all', 'head' or a number of stages N >= 0\. Received: trainable={setting!r}"):
        set_trainable(small_cnn(), setting)


def test_set_trainable_needs_a_classifier():
    with pytest.raises(ModelError, match="final layer named 'logits'"):
        set_trainable(classifier_backbone(small_cnn()), "all")


def test_frozen_batch_norm_uses_moving_statistics_in_training():
    model = set_trainable(small_cnn(), "all")
    bn = model.get_layer("block1_conv1_bn")
    bn.moving_mean.assign(np.full(8, 3.0, "float32"))
    moving = [w.numpy().copy() for w in (bn.moving_mean, bn.moving_variance)]
    trained = keras.Model(model.input, bn.output)(IMAGES, training=True)
    inference = keras.Model(model.input, bn.output)(IMAGES, training=False)
    np.testing.assert_allclose(trained, inference, atol=1e-6)
    for before, after in zip(moving, (bn.moving_mean, bn.moving_variance)):
        np.testing.assert_array_equal(before, after.numpy())


def test_backbone_from_a_registered_name():
    backbone = load_backbone("cnn", (16, 16, 1), filters=(8,), convs_per_block=1, dense_units=12)
    assert backbone.name == "cnn_backbone" and backbone.input.name == "image"
    assert backbone.output_shape == (None, 12)
    assert "logits" not in {layer.name for layer in backbone.layers}


def test_backbones_from_a_saved_classifier_and_a_saved_backbone(tmp_path):
    classifier = small_cnn()
    classifier.save(tmp_path / "classifier.keras")
    expected = features(classifier_backbone(classifier), [IMAGES])  # its input is a list of one
    backbone = load_backbone(tmp_path / "classifier.keras", (16, 16, 1))
    np.testing.assert_allclose(features(backbone, IMAGES), expected, rtol=1e-5, atol=1e-6)

    backbone.save(tmp_path / "backbone.keras")
    again = load_backbone(str(tmp_path / "backbone.keras"))
    assert "logits" not in {layer.name for layer in again.layers}
    np.testing.assert_allclose(features(again, IMAGES), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ModelError, match=r"takes images of shape \(16, 16, 1\)\. Received: input_shape=\(28, 28, 1\)"):
        load_backbone(tmp_path / "backbone.keras", (28, 28, 1))


def test_saved_backbone_follows_the_mixed_precision_policy(tmp_path):
    small_cnn().save(tmp_path / "classifier.keras")
    model = build_with_policy(lambda: with_new_head(load_backbone(tmp_path / "classifier.keras"), 3), True)
    assert model.get_layer("block1_conv1_conv").compute_dtype == "float16"
    assert model.get_layer("logits").compute_dtype == "float32"
    assert model.output.dtype == "float32"


def test_application_backbone_from_a_local_weights_file(tmp_path):
    reference = keras.applications.MobileNetV2(
        input_shape=(32, 32, 3), alpha=0.35, include_top=False, weights=None, pooling="avg"
    )
    weights = tmp_path / "mobilenet_v2_notop.weights.h5"
    reference.save_weights(weights)
    backbone = load_backbone("MobileNetV2", (32, 32, 1), weights=weights, alpha=0.35)
    assert backbone.input.name == "image" and backbone.output_shape == (None, 1280)
    for loaded, saved in zip(backbone.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_array_equal(loaded, saved)
    gray = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 1)).astype("float32")
    expected = features(reference, np.repeat(gray, 3, axis=-1) / 127.5 - 1)  # MobileNetV2's "tf" mode
    np.testing.assert_allclose(features(backbone, gray), expected, rtol=1e-4, atol=1e-5)
    stages = list(backbone_stages(with_new_head(backbone, 2)))
    assert stages[:3] == ["stem", "expanded_conv", "block_1"] and stages[-1] == "block_16"


@pytest.mark.parametrize(
    "source, options, message",
    [
        ("resnet21", {}, r"Expected a registered classifier \(cnn, .*\), a path to a \.keras file, or a Keras "
                         r"Applications model \(MobileNetV2, .*\)\. Received: source='resnet21'"),
        ("missing.keras", {}, r"Expected an existing \.keras model file\. Received: source='missing.keras'"),
        ("cnn", {"weights": "cnn.weights.h5"}, r"weights= is for Keras Applications.* Received: weights="),
        ("cnn", {"input_shape": None}, r"Building 'cnn' needs an input_shape\."),
        ("MobileNetV2", {"input_shape": (16, 16, 3)}, r"at least 32×32 pixels\. Received: input_shape=\(16, 16, 3\)"),
        ("MobileNetV2", {"weights": "nowhere.h5"}, r"a local weights file .* Received: weights='nowhere.h5'"),
    ],
)
def test_unusable_sources_raise_model_error(source, options, message):
    options = {"input_shape": (32, 32, 1), **options}
    with pytest.raises(ModelError, match=message):
        load_backbone(source, options.pop("input_shape"), **options)


def test_new_head_shares_the_backbone_and_names_its_logits():
    backbone = load_backbone("cnn", (16, 16, 1), filters=(8,), convs_per_block=1, dense_units=12)
    model = with_new_head(backbone, 5, dropout=0.25)
    assert model.name == "cnn" and model.input.name == "image" and model.output_shape == (None, 5)
    assert [layer.name for layer in model.layers[-2:]] == ["logits_dropout", "logits"]
    assert model.get_layer("head_dense") is backbone.get_layer("head_dense")
    with pytest.raises(ModelError, match=r"Received: num_classes=0"):
        with_new_head(backbone, 0)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A small CNN trained on the quadrant task, as a .keras classifier file."""
    run = tmp_path_factory.mktemp("pretrain")
    result = fit_classifier(small_cnn, TRAIN, run_dir=run, epochs=3, learning_rate=0.05, **QUICK)
    return result.best_checkpoint.parent / "last.keras"


def test_fine_tune_trains_the_head_then_the_unfrozen_stages(tmp_path, pretrained):
    source = keras.saving.load_model(pretrained)
    relabel = np.array([1, 0, 3, 2])  # a new task on the same images: the head must be learnt anew
    train, test = (TRAIN[0], relabel[TRAIN[1]]), (TEST[0], relabel[TEST[1]])
    result = fine_tune(pretrained, train, run_dir=tmp_path, head_epochs=4, epochs=2, head_learning_rate=0.1,
                       learning_rate=0.01, trainable=1, **QUICK)
    assert result.run_dir == tmp_path / "finetune"
    accuracy = (features(result.model, test[0].astype("float32")).argmax(axis=1) == test[1]).mean()
    assert accuracy >= 0.9

    head = keras.saving.load_model(tmp_path / "head" / "checkpoints" / "last.keras")
    for model, changed in ((head, set()), (result.model, {"block2_conv1_conv", "head_dense"})):
        for layer in source.layers[:-1]:
            same = all(np.array_equal(a, b) for a, b in zip(layer.get_weights(), model.get_layer(layer.name).get_weights()))
            assert same == (layer.name not in changed), (model.name, layer.name)
    assert not np.array_equal(head.get_layer("logits").get_weights()[0], source.get_layer("logits").get_weights()[0])
    assert batch_norms(result.model) and all(not layer.trainable for layer in batch_norms(result.model))

    again = fine_tune(pretrained, train, run_dir=tmp_path, head_epochs=4, epochs=2, head_learning_rate=0.1,
                      learning_rate=0.01, trainable=1, **QUICK)
    assert again.history == {}, "a finished run is loaded, not trained again"
    for a, b in zip(again.model.get_weights(), result.model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_no_finetune_epochs_is_a_linear_probe(tmp_path):
    result = fine_tune("cnn", TRAIN, run_dir=tmp_path, head_epochs=1, epochs=0, head_learning_rate=0.1,
                       backbone_options=dict(filters=(8,), convs_per_block=1, dense_units=12), **QUICK)
    assert result.run_dir == tmp_path / "head" and not (tmp_path / "finetune").exists()
    assert [w.path for w in result.model.trainable_weights] == ["logits/kernel", "logits/bias"]
    assert result.model.output_shape == (None, 4)


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(trainable="backbone"), r"Received: trainable='backbone'"),
        (dict(head_epochs=0, epochs=0), r"At least one phase needs epochs\. Received: head_epochs=0, epochs=0"),
        (dict(epochs=-1), r"Received: epochs=-1"),
    ],
)
def test_fine_tune_checks_its_settings_before_training(tmp_path, options, message):
    with pytest.raises(ModelError, match=message):
        fine_tune("cnn", TRAIN, run_dir=tmp_path, **options)
    assert not any(tmp_path.iterdir())
