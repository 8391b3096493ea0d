"""Seq2seq builders: shapes, masking, registry, saving, and learning a reversal task to ≥ 99% exact match."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kvision.data.text import PAD_ID, CharacterVocabulary, WordPieceVocabulary
from kvision.errors import ModelError
from kvision.models import build, build_rnn_seq2seq, build_transformer_seq2seq, list_models, seq2seq_parts
from kvision.models.decoding import greedy_decode, strip_special
from kvision.train import fit_seq2seq

SOURCE_VOCAB, TARGET_VOCAB = 12, 9

RNN_VARIANTS = [
    dict(cell="lstm", attention="luong", bidirectional=True),
    dict(cell="gru", attention="bahdanau", bidirectional=False),
    dict(cell="lstm", attention="bahdanau", bidirectional=True, num_layers=1),
    dict(cell="lstm", attention="luong", bidirectional=True, num_layers=1, decoder_layers=3),
    dict(cell="gru", attention="luong", bidirectional=False, num_layers=3, decoder_layers=2),
]


def tiny_rnn(**options):
    return build_rnn_seq2seq(SOURCE_VOCAB, TARGET_VOCAB, units=16, embedding_dim=8, dropout=0.0, **options)


def tiny_transformer():
    return build_transformer_seq2seq(
        SOURCE_VOCAB, TARGET_VOCAB, dim=16, num_heads=2, intermediate_dim=32, num_layers=1, dropout=0.0,
        max_source_length=12, max_target_length=10,
    )


def batch(seed=0, source_length=6, target_length=5, rows=3):
    rng = np.random.default_rng(seed)
    source = rng.integers(4, SOURCE_VOCAB, (rows, source_length)).astype("int32")
    target = rng.integers(4, TARGET_VOCAB, (rows, target_length)).astype("int32")
    source[0, 4:] = PAD_ID  # one shorter source
    return source, target


def logits_of(model, source, target):
    return model({"source": source, "target_in": target}).numpy()


@pytest.mark.parametrize("options", RNN_VARIANTS, ids=lambda o: "-".join(str(v) for v in o.values()))
def test_rnn_shapes_and_padding_invariance(options):
    model = tiny_rnn(**options)
    source, target = batch()
    logits = logits_of(model, source, target)
    assert logits.shape == (3, 5, TARGET_VOCAB)
    # Extra padding columns on the source change nothing: masked in the encoder and in attention.
    padded = np.pad(source, [(0, 0), (0, 4)])
    np.testing.assert_allclose(logits_of(model, padded, target), logits, atol=1e-5)
    # The shorter row equals that row alone with its padding dropped.
    np.testing.assert_allclose(logits_of(model, source[:1, :4], target[:1]), logits[:1], atol=1e-5)


def test_transformer_shapes_and_padding_invariance():
    model = tiny_transformer()
    source, target = batch()
    logits = logits_of(model, source, target)
    assert logits.shape == (3, 5, TARGET_VOCAB)
    np.testing.assert_allclose(logits_of(model, np.pad(source, [(0, 0), (0, 4)]), target), logits, atol=1e-5)
    np.testing.assert_allclose(logits_of(model, source[:1, :4], target[:1]), logits[:1], atol=1e-5)
    # Causal: the logits of position t do not depend on later target tokens.
    changed = target.copy()
    changed[:, 3:] = 4
    np.testing.assert_allclose(logits_of(model, source, changed)[:, :3], logits[:, :3], atol=1e-5)


def test_decoder_layers_beyond_the_encoder_start_from_zeros():
    model = tiny_rnn(num_layers=1, decoder_layers=3)
    assert sorted(layer.name for layer in model.layers if layer.name[8:].isdigit()) == [
        "decoder_0", "decoder_1", "decoder_2", "encoder_0"]
    source, _ = batch()
    _, _, states = seq2seq_parts(model).encode(source)
    assert len(states) == 3 and all(len(layer) == 2 for layer in states)  # (h, c) of each decoder layer
    _, final_h, final_c, back_h, back_c = model.get_layer("encoder_0")(
        model.get_layer("source_embedding")(source), mask=source != PAD_ID)
    np.testing.assert_allclose(states[0][0], np.concatenate([final_h, back_h], -1), atol=1e-6)
    np.testing.assert_allclose(states[0][1], np.concatenate([final_c, back_c], -1), atol=1e-6)
    assert not np.any(np.concatenate([np.asarray(s) for s in states[1] + states[2]]))
    shallow = tiny_rnn(num_layers=3, decoder_layers=1)
    assert len(seq2seq_parts(shallow).encode(source)[2]) == 1


def test_transformer_takes_its_sizes_from_the_options():
    model = build_transformer_seq2seq(SOURCE_VOCAB, TARGET_VOCAB, dim=32, num_heads=4, intermediate_dim=48,
                                      num_layers=2, decoder_layers=3)
    encoders = [layer for layer in model.layers if layer.name.startswith("encoder_") and layer.name[8:].isdigit()]
    decoders = [layer for layer in model.layers if layer.name.startswith("decoder_") and layer.name[8:].isdigit()]
    assert len(encoders) == 2 and len(decoders) == 3
    assert {(block.num_heads, block.intermediate_dim) for block in encoders + decoders} == {(4, 48)}
    assert model.get_layer("logits").input.shape[-1] == 32


def test_registry_lists_and_builds_seq2seq_models():
    assert {"attention_rnn", "attention_gru", "transformer"} <= set(list_models("seq2seq"))
    assert "attention_rnn" not in list_models("classifier")
    model = build("attention_gru", SOURCE_VOCAB, TARGET_VOCAB, units=8, embedding_dim=4)
    assert isinstance(model.get_layer("encoder_0").forward_layer, keras.layers.GRU)
    assert isinstance(model.get_layer("attention"), keras.layers.AdditiveAttention)
    with pytest.raises(ModelError, match="Expected some of: .*cell.*Received: heads=3"):
        build("attention_rnn", SOURCE_VOCAB, TARGET_VOCAB, heads=3)


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(cell="rnn"), "cell must be one of lstm, gru"),
        (dict(attention="dot"), "attention must be one of luong, bahdanau"),
        (dict(units=15), "units must be .* even"),
        (dict(num_layers=0), "num_layers and decoder_layers must be positive integers"),
        (dict(decoder_layers=0), "num_layers and decoder_layers must be positive integers.*decoder_layers=0"),
    ],
)
def test_rnn_builder_rejects_bad_options(options, message):
    with pytest.raises(ModelError, match=message):
        build_rnn_seq2seq(SOURCE_VOCAB, TARGET_VOCAB, **options)


def test_bad_vocabulary_sizes_and_heads():
    with pytest.raises(ModelError, match="positive integers.*target_vocab_size=0"):
        build_rnn_seq2seq(SOURCE_VOCAB, 0)
    with pytest.raises(ModelError, match="dim must be a positive multiple of num_heads.*dim=10, num_heads=4"):
        build_transformer_seq2seq(SOURCE_VOCAB, TARGET_VOCAB, dim=10, num_heads=4)


@pytest.mark.parametrize("make", [tiny_rnn, tiny_transformer], ids=["rnn", "transformer"])
def test_saved_model_file_decodes_like_the_original(make, tmp_path):
    model = make()
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    source, target = batch()
    np.testing.assert_allclose(logits_of(loaded, source, target), logits_of(model, source, target), atol=1e-6)
    assert seq2seq_parts(loaded).incremental == seq2seq_parts(model).incremental
    np.testing.assert_array_equal(
        greedy_decode(loaded, source, max_length=8)[0].numpy(), greedy_decode(model, source, max_length=8)[0].numpy()
    )


def test_seq2seq_parts_rejects_other_models():
    classifier = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(ModelError, match="build_rnn_seq2seq or build_transformer_seq2seq"):
        seq2seq_parts(classifier)


def reversal_pairs(count, seed):
    """Strings of 2–5 letters of ``a``–``f`` and their reversal, letters space-separated."""
    rng = np.random.default_rng(seed)
    words = ["".join(rng.choice(list("abcdef"), rng.integers(2, 6))) for _ in range(count)]
    return [(w, " ".join(reversed(w))) for w in words]


def test_attention_rnn_learns_to_reverse_strings(tmp_path):
    """Teacher-forced loss falls until greedy decoding reverses ≥ 99% of strings never trained on exactly."""
    train = reversal_pairs(1000, seed=1)
    seen = {source for source, _ in train}
    test = [pair for pair in reversal_pairs(300, seed=2) if pair[0] not in seen]
    assert len(test) > 100
    source_vocab = CharacterVocabulary.from_texts([s for s, _ in train], max_length=5)
    target_vocab = WordPieceVocabulary.from_symbols([t for _, t in train], max_length=6)
    keras.utils.set_random_seed(0)
    result = fit_seq2seq(
        lambda: build_rnn_seq2seq(source_vocab.size, target_vocab.size, units=32, embedding_dim=16, num_layers=1, dropout=0.0),
        train, test, source_vocab, target_vocab, run_dir=tmp_path, epochs=5, batch_size=32, learning_rate=1e-2,
        seed=0, verbose=0,
    )
    losses = result.history["loss"]
    assert losses[-1] < 0.1 * losses[0]
    sources = source_vocab.tokenize(tf.constant([s for s, _ in test])).to_tensor()
    tokens, _ = greedy_decode(result.model, sources, max_length=6)
    decoded = target_vocab.detokenize(strip_special(tokens)).numpy()
    exact = np.mean([d.decode() == t for d, (_, t) in zip(decoded, test)])
    assert exact >= 0.99, exact
