"""The Show-Attend-Tell captioner: shapes, attention, masking, the doubly stochastic loss, decoding, saving."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kvision.data.text import PAD_ID, START_ID, WordPieceVocabulary
from kvision.errors import ModelError
from kvision.models import build, build_show_attend_tell, list_models
from kvision.models.captioning import is_captioner, spatial_backbone
from kvision.models.decoding import Captioner, attention_weights, beam_search, greedy_decode

VOCAB = 12
SMALL = dict(units=16, embedding_dim=8, feature_dim=16, attention_units=16, dropout=0.0,
             backbone_options=dict(filters=(8, 8), convs_per_block=1, dense_units=8))
IMAGES = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 1)).astype(np.float32)
TARGET_IN = np.array([[START_ID, 4, 5, 6, 7], [START_ID, 8, 9, 0, 0], [START_ID, 0, 0, 0, 0]], np.int32)


def captioner(**options):
    keras.utils.set_random_seed(1)
    return build_show_attend_tell((32, 32, 1), VOCAB, **{**SMALL, **options})


def test_logits_and_attention_have_the_documented_shapes():
    model = captioner()
    assert model({"image": IMAGES, "target_in": TARGET_IN}).shape == (3, 5, VOCAB)
    weights = attention_weights(model, IMAGES, TARGET_IN).numpy()
    assert weights.shape == (3, 5, 8 * 8), "two 2×2 pools: an 8×8 map of a 32×32 image"
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
    assert model.get_layer("encoder").output.shape[1:] == (8, 8, 8)


def test_any_registered_backbone_keeps_its_spatial_map():
    model = build("show_attend_tell", (32, 32, 3), VOCAB, backbone="resnet20", units=16)
    assert model.get_layer("encoder").output.shape[1:] == (8, 8, 64), "ResNet-20's last stage, before pooling"
    classifier = build("cnn", (32, 32, 1), 3, filters=(4, 4, 4))
    assert spatial_backbone(classifier).output.shape[1:] == (4, 4, 4)
    assert list_models("captioning") == ["show_attend_tell", "show_attend_tell_gru"]


def test_padding_changes_neither_real_logits_nor_the_attention_loss():
    model = captioner(attention_regularization=2.0)
    short = {"image": IMAGES, "target_in": TARGET_IN}
    padded = {"image": IMAGES, "target_in": np.pad(TARGET_IN, [[0, 0], [0, 3]], constant_values=PAD_ID)}
    logits = model(short)
    loss = float(model.losses[0])
    padded_logits = model(padded)
    padded_loss = float(model.losses[0])
    real = TARGET_IN != PAD_ID
    np.testing.assert_allclose(padded_logits.numpy()[:, :5][real], logits.numpy()[real], atol=1e-5)
    assert padded_loss == pytest.approx(loss, rel=1e-5)


def test_the_doubly_stochastic_loss_is_the_papers_over_real_steps():
    model = captioner(attention_regularization=0.7)
    model({"image": IMAGES, "target_in": TARGET_IN})
    weights = attention_weights(model, IMAGES, TARGET_IN).numpy()
    coverage = (weights * (TARGET_IN != PAD_ID)[..., None]).sum(axis=1)
    assert float(model.losses[0]) == pytest.approx(0.7 * np.mean((1 - coverage) ** 2), rel=1e-5)
    off = captioner(attention_regularization=0.0)
    off({"image": IMAGES, "target_in": TARGET_IN})
    assert off.losses == []


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_beam_width_one_is_greedy(cell):
    model = captioner(cell=cell)
    greedy, greedy_scores = greedy_decode(model, IMAGES, max_length=6)
    beams, beam_scores = beam_search(model, IMAGES, beam_width=1, max_length=6)
    np.testing.assert_array_equal(beams.numpy()[:, 0], greedy.numpy())
    np.testing.assert_allclose(beam_scores.numpy()[:, 0], greedy_scores.numpy(), rtol=1e-5)
    wide, wide_scores = beam_search(model, IMAGES, beam_width=3, max_length=6)
    assert wide.shape == (3, 3, 6) and np.all(np.diff(wide_scores.numpy(), axis=1) <= 1e-6)
    assert np.all(wide_scores.numpy()[:, 0] >= greedy_scores.numpy() - 1e-5), "the beam finds at least greedy's caption"


def test_training_lowers_the_loss_and_the_model_saves_and_loads(tmp_path):
    model = captioner(attention_regularization=0.0)  # the token loss alone
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    target_out = np.concatenate([TARGET_IN[:, 1:], np.full((3, 1), 3)], axis=1)
    x = {"image": IMAGES, "target_in": TARGET_IN}
    before = model.evaluate(x, target_out, verbose=0)
    # 30 steps on the 3 examples, 10 to an epoch: Keras' per-epoch work once per 10 steps.
    repeated = {key: np.tile(value, [10] + [1] * (value.ndim - 1)) for key, value in x.items()}
    model.fit(repeated, np.tile(target_out, [10, 1]), batch_size=3, epochs=3, shuffle=False, verbose=0)
    assert model.evaluate(x, target_out, verbose=0) < 0.5 * before
    model.save(tmp_path / "captioner.keras")
    loaded = keras.saving.load_model(tmp_path / "captioner.keras")
    assert is_captioner(loaded)
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), atol=1e-5)
    np.testing.assert_array_equal(greedy_decode(loaded, IMAGES, max_length=6)[0], greedy_decode(model, IMAGES, max_length=6)[0])


def test_the_captioner_reads_image_bytes_as_the_decoded_images():
    vocab = WordPieceVocabulary.from_symbols(["a bag above a top"], max_length=6)
    model = build_show_attend_tell((32, 32, 1), vocab.size, **SMALL)
    reader = Captioner(model, vocab, beam_width=2)
    images = IMAGES.astype(np.uint8)
    encoded = tf.constant([tf.io.encode_png(image).numpy() for image in images])
    from_bytes = reader.caption(encoded)
    captions, scores = reader.caption_images(images.astype(np.float32))
    np.testing.assert_array_equal(from_bytes["captions"].numpy(), captions.numpy())
    np.testing.assert_allclose(from_bytes["scores"].numpy(), scores.numpy(), rtol=1e-5)
    beams = reader.caption_beams(encoded)
    assert beams["captions"].shape == (3, 2)
    np.testing.assert_array_equal(beams["captions"].numpy()[:, 0], captions.numpy())


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(backbone="resnt20"), "Did you mean resnet20"),
        (dict(backbone="vae_encoder"), "Unknown classifier model name"),
        (dict(cell="rnn"), "cell must be one of lstm, gru"),
        (dict(attention_regularization=-1.0), "attention_regularization must be >= 0"),
        (dict(units=0), "units must be a positive integer"),
    ],
)
def test_bad_options_raise_a_clear_error(options, message):
    with pytest.raises(ModelError, match=message):
        build_show_attend_tell((32, 32, 1), VOCAB, **options)


def test_trains_under_mixed_precision_with_float32_logits_and_losses():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = captioner()
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        target_out = np.concatenate([TARGET_IN[:, 1:], np.full((3, 1), 3)], axis=1)
        history = model.fit({"image": IMAGES, "target_in": TARGET_IN}, target_out, epochs=2, verbose=0).history
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.output.dtype == "float32" and model.losses[0].dtype == "float32"
    assert np.all(np.isfinite(history["loss"]))
