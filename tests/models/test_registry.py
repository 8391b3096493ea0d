"""Every registered model builds, runs, saves and reloads; the registry's errors."""

import json

import keras
import numpy as np
import pytest

from kvision.errors import ModelError
from kvision.models import build, build_resnet, get_builder, list_models, register_model
from tests.models.helpers import assert_layers_named, assert_survives_save_and_config, images

NUM_CLASSES = 7
# One member of each family, at its shallowest (the overrides): it holds every kind of layer and block its deeper
# registered siblings repeat, so its save/load and config round trips stand for theirs.
ROUND_TRIP = {
    "cnn": {},
    "cnn_fast": {},
    "resnet20": {"depth": 8},
    "resnet20v2": {"depth": 8},
    "resnet18": {"stage_blocks": (1, 1, 1, 1)},
    "resnet50": {"stage_blocks": (1, 1, 1, 1)},
}


def smallest_side(name):
    """The smallest height and width ``name`` accepts: 32 for ImageNet-style ResNets, 8 for the others."""
    return 32 if get_builder(name)[0] is build_resnet else 8


def family(name):
    """A registered model's builder and the defaults that change its kind of blocks (not how many)."""
    builder, defaults = get_builder(name)
    kind = {k: v for k, v in defaults.items() if k not in ("depth", "stage_blocks", "width", "name")}
    return builder.__name__, tuple(sorted(kind.items()))


def test_every_family_has_a_round_trip_representative():
    classifiers = list_models("classifier")
    assert set(ROUND_TRIP) <= set(classifiers)
    assert {family(name) for name in ROUND_TRIP} == {family(name) for name in classifiers}
    assert len({family(name) for name in ROUND_TRIP}) == len(ROUND_TRIP), "one representative per family"


@pytest.mark.parametrize("name", list_models("classifier"))
def test_every_model_builds_and_runs_at_its_smallest_input(name):
    """Built and run at the smallest RGB input it takes (one pixel less is refused); its config lists its layers."""
    side = smallest_side(name)
    with pytest.raises(ModelError, match="Received: input_shape"):
        build(name, (side - 1, side - 1, 3), NUM_CLASSES)
    model = build(name, (side, side, 3), NUM_CLASSES)
    assert isinstance(model, keras.Model)
    assert model.layers[0].name == "image"
    assert model.input.dtype == "float32"
    assert model.layers[-1].name == "logits"
    assert model.output.shape == (None, NUM_CLASSES)
    assert_layers_named(model)

    logits = keras.ops.convert_to_numpy(model(images((side, side, 3)), training=False))
    assert logits.shape == (2, NUM_CLASSES)
    assert logits.dtype == np.float32
    assert np.all(np.isfinite(logits))
    assert not np.allclose(logits[0], logits[1])  # the output depends on the input

    config = json.loads(json.dumps(model.get_config()))  # what a .keras file stores
    assert [layer["name"] for layer in config["layers"]] == [layer.name for layer in model.layers]


@pytest.mark.parametrize("name", ROUND_TRIP)
def test_each_family_round_trips_through_keras_files_and_configs(name, tmp_path):
    """In grayscale (the test above builds every model in RGB), at Fashion-MNIST's 28×28 (ImageNet-style: 32×32)."""
    side = 32 if get_builder(name)[0] is build_resnet else 28
    model = build(name, (side, side, 1), NUM_CLASSES, **ROUND_TRIP[name])
    assert model.output.shape == (None, NUM_CLASSES)
    assert_survives_save_and_config(model, images((side, side, 1)), tmp_path / f"{name}.keras")


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
