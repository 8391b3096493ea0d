"""Every registered model builds, runs, saves and reloads; the registry's errors."""

import keras
import numpy as np
import pytest

from kvision.errors import ModelError
from kvision.models import build, build_resnet, get_builder, list_models, register_model
from tests.models.helpers import assert_layers_named, assert_survives_save_and_config, images

NUM_CLASSES = 7
# The deepest models run once, at 32×32×3, to keep the suite quick.
HEAVY = {"resnet50", "resnet110", "resnet110v2"}


def small_cases():
    cases = []
    for name in list_models("classifier"):
        cases.append(pytest.param(name, (32, 32, 3), id=f"{name}-rgb32"))
        if name not in HEAVY:
            # ImageNet-style ResNets need 32×32; the others take Fashion-MNIST's 28×28.
            size = 32 if get_builder(name)[0] is build_resnet else 28
            cases.append(pytest.param(name, (size, size, 1), id=f"{name}-gray{size}"))
    return cases


@pytest.mark.parametrize("name, input_shape", small_cases())
def test_every_model_builds_runs_and_round_trips(name, input_shape, tmp_path):
    model = build(name, input_shape, NUM_CLASSES)
    assert isinstance(model, keras.Model)
    assert model.layers[0].name == "image"
    assert model.input.dtype == "float32"
    assert model.layers[-1].name == "logits"
    assert model.output.shape == (None, NUM_CLASSES)
    assert_layers_named(model)

    x = images(input_shape)
    logits = keras.ops.convert_to_numpy(model(x, training=False))
    assert logits.shape == (2, NUM_CLASSES)
    assert logits.dtype == np.float32
    assert np.all(np.isfinite(logits))
    assert not np.allclose(logits[0], logits[1])  # the output depends on the input

    assert_survives_save_and_config(model, x, tmp_path / f"{name}.keras")


def test_build_merges_overrides_over_variant_defaults():
    model = build("resnet20", (32, 32, 3), 10, width=8, name="narrow")
    assert model.name == "narrow"
    assert model.get_layer("stem_conv").filters == 8
    assert model.get_layer("stage3_block3_2_conv").filters == 32


def test_unknown_name_lists_the_registered_models():
    with pytest.raises(ModelError, match=r"Did you mean [^?]*resnet20") as error:
        build("resnet21", (32, 32, 3), 10)
    message = str(error.value)
    assert all(name in message for name in list_models())
    assert message.endswith("Received: name='resnet21'")


def test_unknown_option_lists_the_builders_options():
    with pytest.raises(ModelError, match="Received: depth=20") as error:
        build("cnn", (28, 28, 1), 10, depth=20)
    assert "filters" in str(error.value) and "dense_units" in str(error.value)


def test_a_name_is_registered_once():
    with pytest.raises(ModelError, match="Received: name='cnn'"):
        register_model("cnn", lambda input_shape, num_classes: None)
    assert get_builder("cnn")[0].__name__ == "build_cnn"


@pytest.mark.parametrize(
    "input_shape, num_classes",
    [((32, 32), 10), ((32, 32, 0), 10), ((32.0, 32, 3), 10), (32, 10), ((32, 32, 3), 0)],
)
def test_malformed_shapes_and_class_counts_are_rejected(input_shape, num_classes):
    with pytest.raises(ModelError, match="Received: "):
        build("resnet20", input_shape, num_classes)


def test_models_are_listed_and_looked_up_by_task():
    assert list_models("gan") == ["dcgan_discriminator", "dcgan_generator"]
    assert "cnn" in list_models("classifier") and "dcgan_generator" not in list_models("classifier")
    assert list_models("vae") == ["vae_decoder", "vae_encoder"]
    assert list_models("captioning") == ["show_attend_tell", "show_attend_tell_gru"]
    tasks = ("classifier", "gan", "seq2seq", "vae", "captioning")
    assert sorted(name for task in tasks for name in list_models(task)) == list_models()
    with pytest.raises(ModelError, match="Unknown classifier model name. Expected one of: cnn, .*Received: name='dcgan_generator'"):
        get_builder("dcgan_generator", "classifier")
