"""Greedy and beam search: agreement, score order, scores that are the model's own log-probabilities, and the Translator."""

import numpy as np
import pytest
import tensorflow as tf

from kvision.data.text import END_ID, PAD_ID, START_ID, CharacterVocabulary, WordPieceVocabulary
from kvision.errors import ModelError
from kvision.models import build_rnn_seq2seq, build_transformer_seq2seq, decoding
from kvision.models.decoding import Translator, attention_weights, beam_search, greedy_decode, length_penalty
from kvision.models.seq2seq import Seq2SeqParts

VOCAB = 10
MAX_LENGTH = 7


def rnn():
    tf.keras.utils.set_random_seed(3)
    return build_rnn_seq2seq(VOCAB, VOCAB, units=16, embedding_dim=8, dropout=0.0)


def transformer():
    tf.keras.utils.set_random_seed(3)
    return build_transformer_seq2seq(
        VOCAB, VOCAB, dim=16, num_heads=2, intermediate_dim=32, num_layers=1, dropout=0.0,
        max_source_length=8, max_target_length=MAX_LENGTH + 1,
    )


def deep_decoder_rnn():
    """One encoder layer, three decoder layers: the two upper ones start from zeros and carry their own states."""
    tf.keras.utils.set_random_seed(3)
    return build_rnn_seq2seq(VOCAB, VOCAB, units=16, embedding_dim=8, dropout=0.0, num_layers=1, decoder_layers=3)


MODELS = pytest.mark.parametrize("name", ["rnn", "deep-decoder", "transformer"])


@pytest.fixture(scope="module")
def models():
    """Each model built once: the tests only decode and score with them."""
    return {"rnn": rnn(), "deep-decoder": deep_decoder_rnn(), "transformer": transformer()}


SOURCE = np.array([[4, 5, 6, 7, 8], [9, 4, 4, 0, 0], [5, 0, 0, 0, 0], [0, 0, 0, 0, 0]], np.int32)


def sequence_log_prob(model, source, tokens):
    """Σ log P(token) of ``tokens`` (up to and including [END]) under teacher forcing."""
    target_in = np.concatenate([np.full((len(tokens), 1), START_ID), tokens[:, :-1]], axis=1)
    log_probs = tf.nn.log_softmax(model({"source": source, "target_in": target_in})).numpy()
    picked = np.take_along_axis(log_probs, tokens[..., None], axis=-1)[..., 0]
    ended = np.cumsum(tokens == END_ID, axis=1) - (tokens == END_ID)  # 1 after the first [END]
    return np.sum(np.where((ended == 0) & (tokens != PAD_ID), picked, 0.0), axis=1)


@MODELS
def test_beam_width_one_is_greedy(models, name):
    model = models[name]
    greedy, greedy_scores = greedy_decode(model, SOURCE, max_length=MAX_LENGTH)
    beams, beam_scores = beam_search(model, SOURCE, beam_width=1, max_length=MAX_LENGTH)
    np.testing.assert_array_equal(beams[:, 0].numpy(), greedy.numpy())
    np.testing.assert_allclose(beam_scores[:, 0].numpy(), greedy_scores.numpy(), rtol=1e-5)


@MODELS
def test_beams_are_distinct_in_score_order_and_scored_by_the_model(models, name):
    model = models[name]
    tokens, scores = beam_search(model, SOURCE, beam_width=4, max_length=MAX_LENGTH)
    tokens, scores = tokens.numpy(), scores.numpy()
    assert tokens.shape == (4, 4, MAX_LENGTH) and scores.shape == (4, 4)
    assert np.all(np.diff(scores, axis=1) <= 0)
    for row in range(len(SOURCE)):
        assert len({tuple(beam) for beam in tokens[row]}) == 4
        expected = sequence_log_prob(model, np.repeat(SOURCE[row : row + 1], 4, axis=0), tokens[row])
        np.testing.assert_allclose(scores[row], expected, atol=1e-4)
    # After [END] comes padding only; [PAD] and [START] are never generated before it.
    for beam in tokens.reshape(-1, MAX_LENGTH):
        ends = np.flatnonzero(beam == END_ID)
        stop = ends[0] if len(ends) else MAX_LENGTH
        assert np.all(beam[stop + 1 :] == PAD_ID)
        assert not np.isin(beam[:stop], [PAD_ID, START_ID]).any()


@MODELS
def test_greedy_score_is_the_log_probability_of_its_output(models, name):
    model = models[name]
    tokens, scores = greedy_decode(model, SOURCE, max_length=MAX_LENGTH)
    np.testing.assert_allclose(scores.numpy(), sequence_log_prob(model, SOURCE, tokens.numpy()), atol=1e-4)


def test_length_penalty_rescales_scores(models):
    model = models["rnn"]
    tokens, scores = beam_search(model, SOURCE, beam_width=3, max_length=MAX_LENGTH, alpha=1.0)
    lengths = np.minimum(np.argmax(tokens.numpy() == END_ID, axis=-1) + 1, MAX_LENGTH)
    lengths = np.where((tokens.numpy() == END_ID).any(-1), lengths, MAX_LENGTH)
    raw = np.stack([sequence_log_prob(model, np.repeat(SOURCE[r : r + 1], 3, 0), tokens[r].numpy()) for r in range(4)])
    np.testing.assert_allclose(scores.numpy(), raw / length_penalty(lengths, 1.0).numpy(), atol=1e-4)
    assert float(length_penalty(1, 0.0)) == 1.0


# A decoder whose next-token distribution depends on the previous token only. After [START]: A. After A:
# [END] or B, 1/2 each. After B: [END] 0.95, B 0.05. So "A" has log P = log 0.5 over 2 tokens with [END], and
# "A B" has log P = log 0.5 + log 0.95 over 3: more probable raw, less probable once divided by the GNMT penalty.
A, B = 4, 5
NEXT = np.full((6, 6), 1e-12)
NEXT[START_ID, A] = 1.0
NEXT[A, [END_ID, B]] = 0.5
NEXT[B, [END_ID, B]] = 0.95, 0.05
NEXT[[PAD_ID, END_ID], END_ID] = 1.0


@pytest.fixture
def bigram_parts(monkeypatch):
    """``beam_search`` decodes with the table ``NEXT`` instead of a network's layers."""
    table = tf.constant(np.log(NEXT), tf.float32)
    parts = Seq2SeqParts(
        encode=lambda source: (tf.zeros([tf.shape(source)[0], 1, 1]), tf.ones([tf.shape(source)[0], 1], tf.bool), ()),
        decode=lambda target_in, outputs, mask, states: (tf.gather(table, target_in), (), None),
        incremental=True,
        max_target_length=None,
    )
    monkeypatch.setattr(decoding, "decoding_parts", lambda model: parts)


# The two scores cross at alpha = log(log P_long / log P_short) / log(8 / 7) ≈ 0.54.
@pytest.mark.parametrize("alpha, winner", [(0.0, "short"), (0.3, "short"), (1.0, "long"), (2.0, "long")])
def test_length_penalty_chooses_the_hypothesis_the_formula_ranks_first(bigram_parts, alpha, winner):
    ranked = {
        "short": ([A, END_ID, PAD_ID, PAD_ID], np.log(0.5) / ((5 + 2) / 6) ** alpha),
        "long": ([A, B, END_ID, PAD_ID], (np.log(0.5) + np.log(0.95)) / ((5 + 3) / 6) ** alpha),
    }
    loser = "long" if winner == "short" else "short"
    assert ranked[winner][1] > ranked[loser][1], "the constructed case ranks as the test says"
    tokens, scores = beam_search(None, np.zeros((1, 3), np.int32), beam_width=2, max_length=4, alpha=alpha)
    np.testing.assert_array_equal(tokens.numpy()[0], [ranked[winner][0], ranked[loser][0]])
    np.testing.assert_allclose(scores.numpy()[0], [ranked[winner][1], ranked[loser][1]], rtol=1e-5)


def test_bad_arguments_are_refused(models):
    with pytest.raises(ModelError, match="beam_width must be a positive integer"):
        beam_search(models["rnn"], SOURCE, beam_width=0, max_length=MAX_LENGTH)
    with pytest.raises(ModelError, match="must not exceed the model's target length 8.*max_length=9"):
        greedy_decode(models["transformer"], SOURCE, max_length=9)


def test_attention_weights_are_distributions_over_real_source_tokens(models):
    model = models["rnn"]
    tokens, _ = greedy_decode(model, SOURCE[:3], max_length=MAX_LENGTH)
    target_in = np.concatenate([np.full((3, 1), START_ID), tokens.numpy()], axis=1)
    weights = attention_weights(model, SOURCE[:3], target_in).numpy()
    assert weights.shape == (3, MAX_LENGTH + 1, 5)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
    assert np.all(weights[1, :, 3:] < 1e-6) and np.all(weights[2, :, 1:] < 1e-6)
    with pytest.raises(ModelError, match="RNN models only"):
        attention_weights(models["transformer"], SOURCE, target_in)


@pytest.fixture(scope="module")
def translator():
    source_vocab = CharacterVocabulary("abcdef", max_length=6)
    target_vocab = WordPieceVocabulary.from_symbols(["X Y Z"], max_length=MAX_LENGTH)
    tf.keras.utils.set_random_seed(5)
    model = build_rnn_seq2seq(source_vocab.size, target_vocab.size, units=8, embedding_dim=4, dropout=0.0)
    return Translator(model, source_vocab, target_vocab, beam_width=3)


def test_translator_handles_empty_unseen_and_over_long_inputs(translator):
    texts = ["abc", "", "ABC", "ab☃z", "abcdef" * 5, "abcdef"]
    result = translator.translate(tf.constant(texts))
    outputs = [o.decode() for o in result["outputs"].numpy()]
    assert len(outputs) == 6 and np.all(np.isfinite(result["scores"].numpy()))
    assert outputs[2] == outputs[0]  # lower-cased
    assert outputs[4] == outputs[5]  # cut to max_length = 6 characters
    assert all(set(o.split()) <= {"X", "Y", "Z", "[UNK]"} for o in outputs)
    assert all(len(o.split()) <= MAX_LENGTH for o in outputs)
    ids = translator.source_ids(tf.constant(["ab☃z", ""])).numpy()
    np.testing.assert_array_equal(ids, [[4, 5, 1, 1], [0, 0, 0, 0]])  # unseen → [UNK]; empty → padding
    assert translator.source_ids(tf.constant(["", ""])).shape == (2, 1)
    assert translator.translate(tf.constant([], tf.string))["outputs"].shape == (0,)


def test_translator_best_output_is_the_first_beam(translator):
    texts = tf.constant(["abc", "fed", "a"])
    beams, best = translator.translate_beams(texts), translator.translate(texts)
    np.testing.assert_array_equal(beams["outputs"][:, 0].numpy(), best["outputs"].numpy())
    np.testing.assert_allclose(beams["scores"][:, 0].numpy(), best["scores"].numpy())
    assert beams["outputs"].shape == (3, 3)
