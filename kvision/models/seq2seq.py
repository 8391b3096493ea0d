"""Sequence-to-sequence builders: attention RNN encoder-decoder and Transformer.

Both take token ids with 0 as padding and return a functional model
``{"source": int[B, S], "target_in": int[B, T]} → logits[B, T, V]`` trained
with teacher forcing. The forward pass is written once, as functions of the
model's named layers, and used twice: on symbolic tensors by the builders and
on real tensors by ``seq2seq_parts`` for step-by-step decoding, so a model
loaded from a ``.keras`` file decodes with exactly the layers it trained.
"""

import dataclasses
from typing import Callable

import keras
import keras_hub
from keras import layers, ops

from kvision.data.text import PAD_ID
from kvision.models.common import is_positive_int, require
from kvision.models.registry import register_model

CELLS = {"lstm": layers.LSTM, "gru": layers.GRU}
ATTENTIONS = ("luong", "bahdanau")


def _stack(named, prefix):
    """The layers ``prefix0, prefix1, …`` of ``named``, in order."""
    found = []
    while f"{prefix}{len(found)}" in named:
        found.append(named[f"{prefix}{len(found)}"])
    return found


def _inputs():
    return {
        "source": keras.Input(shape=(None,), dtype="int32", name="source"),
        "target_in": keras.Input(shape=(None,), dtype="int32", name="target_in"),
    }


def _decoder_layers(num_layers, decoder_layers):
    """The decoder's depth: ``decoder_layers``, or the encoder's ``num_layers`` when None; both checked."""
    decoder_layers = num_layers if decoder_layers is None else decoder_layers
    require(
        is_positive_int(num_layers) and is_positive_int(decoder_layers),
        "num_layers and decoder_layers must be positive integers.",
        num_layers=num_layers,
        decoder_layers=decoder_layers,
    )
    return decoder_layers


def _check_vocab_sizes(source_vocab_size, target_vocab_size):
    require(
        is_positive_int(source_vocab_size) and is_positive_int(target_vocab_size),
        "source_vocab_size and target_vocab_size must be positive integers.",
        source_vocab_size=source_vocab_size,
        target_vocab_size=target_vocab_size,
    )


# --- RNN encoder-decoder with attention --------------------------------------


def rnn_encode(named, source, training=None):
    """``(encoder outputs [B, S, units], source mask [B, S], initial states of each decoder layer)``.

    Decoder layer ``i`` starts from encoder layer ``i``'s final states (a
    bidirectional layer's forward and backward states concatenated, so each
    matches the decoder's ``units``); decoder layers beyond the encoder's
    depth start from zeros.
    """
    mask = ops.not_equal(source, PAD_ID)
    x = named["encoder_dropout"](named["source_embedding"](source), training=training)
    states = []
    for rnn in _stack(named, "encoder_"):
        x, *final = rnn(x, mask=mask, training=training)
        if isinstance(rnn, layers.Bidirectional):
            half = len(final) // 2
            final = [ops.concatenate([f, b], axis=-1) for f, b in zip(final[:half], final[half:])]
        states.append(final)  # each [B, units]
        x = named["encoder_dropout"](x, training=training)
    depth = len(_stack(named, "decoder_"))
    zeros = [ops.zeros_like(state) for state in states[0]]
    return x, mask, (states + [zeros] * depth)[:depth]


def _attend(named, query, encoder_outputs, source_mask):
    """Context vectors and attention weights of ``query`` over the unmasked encoder outputs.

    Luong "general": score = qᵀ W hⱼ (keys are ``W hⱼ``, dot-product attention).
    Bahdanau (additive): score = vᵀ tanh(W₁ q + W₂ hⱼ).
    """
    keys = named["attention_key"](encoder_outputs)
    if "attention_query" in named:
        query = named["attention_query"](query)
    return named["attention"](
        [query, encoder_outputs, keys], mask=[None, source_mask], return_attention_scores=True
    )


def rnn_decode(named, target_in, encoder_outputs, source_mask, states, training=None):
    """``(logits [B, T, V], new states, attention [B, T, S])`` for decoder inputs ``target_in``.

    The decoder RNN runs first and attention is computed from its current
    output (Luong et al.'s ordering, with either score), so teacher-forced
    training processes all target positions in one pass. Called with one
    token and the previous states it is one decoding step.
    """
    x = named["decoder_dropout"](named["target_embedding"](target_in), training=training)
    new_states = []
    for rnn, initial in zip(_stack(named, "decoder_"), states):
        x, *final = rnn(x, initial_state=initial, training=training)
        new_states.append(final)
    context, weights = _attend(named, x, encoder_outputs, source_mask)
    x = named["attention_combine"](ops.concatenate([context, x], axis=-1))
    x = named["decoder_dropout"](x, training=training)
    return named["logits"](x), new_states, weights


def build_rnn_seq2seq(
    source_vocab_size,
    target_vocab_size,
    *,
    cell="lstm",
    units=256,
    embedding_dim=128,
    num_layers=2,
    decoder_layers=None,
    bidirectional=True,
    attention="luong",
    dropout=0.2,
    name="rnn_seq2seq",
):
    """An RNN encoder-decoder with global attention (Luong et al. 2015; Bahdanau et al. 2015).

    Args:
        source_vocab_size, target_vocab_size: vocabulary sizes (id 0 = padding).
        cell: ``"lstm"`` or ``"gru"``.
        units: state size of every decoder layer (and of every encoder layer;
            a bidirectional encoder layer has ``units / 2`` per direction).
        num_layers: stacked layers in the encoder (and in the decoder).
        decoder_layers: stacked layers in the decoder, if not ``num_layers``;
            decoder layer ``i`` starts from encoder layer ``i``'s final state,
            or from zeros when the encoder has no layer ``i``.
        bidirectional: encoder layers read the source both ways.
        attention: ``"luong"`` (general, multiplicative) or ``"bahdanau"`` (additive).
        dropout: on embeddings and between layers.
    """
    _check_vocab_sizes(source_vocab_size, target_vocab_size)
    require(cell in CELLS, f"cell must be one of {', '.join(CELLS)}.", cell=cell)
    require(attention in ATTENTIONS, f"attention must be one of {', '.join(ATTENTIONS)}.", attention=attention)
    decoder_layers = _decoder_layers(num_layers, decoder_layers)
    require(
        is_positive_int(units) and (not bidirectional or units % 2 == 0),
        "units must be a positive integer, even when the encoder is bidirectional.",
        units=units,
        bidirectional=bidirectional,
    )
    rnn = CELLS[cell]
    named = {
        "source_embedding": layers.Embedding(source_vocab_size, embedding_dim, name="source_embedding"),
        "target_embedding": layers.Embedding(target_vocab_size, embedding_dim, name="target_embedding"),
        "encoder_dropout": layers.Dropout(dropout, name="encoder_dropout"),
        "decoder_dropout": layers.Dropout(dropout, name="decoder_dropout"),
        "attention_key": layers.Dense(units, use_bias=False, name="attention_key"),
        "attention_combine": layers.Dense(units, activation="tanh", use_bias=False, name="attention_combine"),
        "logits": layers.Dense(target_vocab_size, dtype="float32", name="logits"),  # float32 under mixed precision
    }
    if attention == "luong":
        named["attention"] = layers.Attention(name="attention")
    else:
        named["attention_query"] = layers.Dense(units, name="attention_query")
        named["attention"] = layers.AdditiveAttention(name="attention")
    for i in range(num_layers):
        if bidirectional:
            encoder = layers.Bidirectional(
                rnn(units // 2, return_sequences=True, return_state=True), name=f"encoder_{i}"
            )
        else:
            encoder = rnn(units, return_sequences=True, return_state=True, name=f"encoder_{i}")
        named[f"encoder_{i}"] = encoder
    for i in range(decoder_layers):
        named[f"decoder_{i}"] = rnn(units, return_sequences=True, return_state=True, name=f"decoder_{i}")

    inputs = _inputs()
    encoder_outputs, mask, states = rnn_encode(named, inputs["source"])
    logits, _, _ = rnn_decode(named, inputs["target_in"], encoder_outputs, mask, states)
    return keras.Model(inputs, logits, name=name)


# --- Transformer encoder-decoder ----------------------------------------------


def transformer_encode(named, source, training=None):
    """``(encoder outputs [B, S, dim], source mask [B, S], ())``."""
    mask = ops.not_equal(source, PAD_ID)
    x = named["source_embedding"](source)
    for block in _stack(named, "encoder_"):
        x = block(x, padding_mask=mask, training=training)
    return x, mask, ()


def transformer_decode(named, target_in, encoder_outputs, source_mask, states=(), training=None):
    """``(logits [B, T, V], (), None)``: causal self-attention over ``target_in``, cross-attention to the source."""
    x = named["target_embedding"](target_in)
    for block in _stack(named, "decoder_"):
        x = block(x, encoder_outputs, encoder_padding_mask=source_mask, use_causal_mask=True, training=training)
    return named["logits"](x), (), None


def build_transformer_seq2seq(
    source_vocab_size,
    target_vocab_size,
    *,
    max_source_length=32,
    max_target_length=32,
    dim=256,
    num_heads=4,
    intermediate_dim=1024,
    num_layers=3,
    decoder_layers=None,
    dropout=0.1,
    name="transformer_seq2seq",
):
    """A Transformer encoder-decoder (Vaswani et al. 2017) from keras-hub layers.

    ``TokenAndPositionEmbedding`` (learned positions up to the max lengths),
    ``num_layers`` ``TransformerEncoder`` and ``decoder_layers`` (default:
    ``num_layers``) ``TransformerDecoder`` blocks of width ``dim`` with
    ``num_heads`` heads and feed-forward width ``intermediate_dim``, and a
    dense projection to the target vocabulary.
    """
    _check_vocab_sizes(source_vocab_size, target_vocab_size)
    decoder_layers = _decoder_layers(num_layers, decoder_layers)
    require(
        is_positive_int(dim) and is_positive_int(num_heads) and dim % num_heads == 0,
        "dim must be a positive multiple of num_heads.",
        dim=dim,
        num_heads=num_heads,
    )
    named = {
        "source_embedding": keras_hub.layers.TokenAndPositionEmbedding(
            source_vocab_size, max_source_length, dim, name="source_embedding"
        ),
        "target_embedding": keras_hub.layers.TokenAndPositionEmbedding(
            target_vocab_size, max_target_length, dim, name="target_embedding"
        ),
        "logits": layers.Dense(target_vocab_size, dtype="float32", name="logits"),  # float32 under mixed precision
    }
    for i in range(num_layers):
        named[f"encoder_{i}"] = keras_hub.layers.TransformerEncoder(
            intermediate_dim, num_heads, dropout=dropout, name=f"encoder_{i}"
        )
    for i in range(decoder_layers):
        named[f"decoder_{i}"] = keras_hub.layers.TransformerDecoder(
            intermediate_dim, num_heads, dropout=dropout, name=f"decoder_{i}"
        )
    inputs = _inputs()
    encoder_outputs, mask, _ = transformer_encode(named, inputs["source"])
    logits, _, _ = transformer_decode(named, inputs["target_in"], encoder_outputs, mask)
    return keras.Model(inputs, logits, name=name)


# --- Decoding parts of a trained model -----------------------------------------


@dataclasses.dataclass(frozen=True)
class Seq2SeqParts:
    """The pieces a decoder needs, bound to a trained model's layers.

    ``encode(source) → (encoder_outputs, source_mask, states)`` and
    ``decode(target_in, encoder_outputs, source_mask, states) → (logits,
    states, attention or None)``. ``incremental`` models (RNNs) are fed one
    token per step and carry their states; the others (Transformer) are fed
    the whole prefix each step. ``source_dtype`` is what ``encode`` takes:
    token ids, or images for a captioner.
    """

    encode: Callable
    decode: Callable
    incremental: bool
    max_target_length: int | None
    source_dtype: str = "int32"


def seq2seq_parts(model):
    """``Seq2SeqParts`` of a model built by ``build_rnn_seq2seq`` or ``build_transformer_seq2seq``."""
    named = {layer.name: layer for layer in model.layers}
    if isinstance(named.get("encoder_0"), keras_hub.layers.TransformerEncoder):
        max_length = named["target_embedding"].position_embedding.sequence_length
        return Seq2SeqParts(
            lambda source: transformer_encode(named, source),
            lambda *args: transformer_decode(named, *args),
            incremental=False,
            max_target_length=max_length,
        )
    require(
        "attention" in named and "encoder_0" in named,
        "Expected a model built by build_rnn_seq2seq or build_transformer_seq2seq.",
        model=model.name,
    )
    return Seq2SeqParts(
        lambda source: rnn_encode(named, source),
        lambda *args: rnn_decode(named, *args),
        incremental=True,
        max_target_length=None,
    )


register_model("attention_rnn", build_rnn_seq2seq, task="seq2seq")
register_model("attention_gru", build_rnn_seq2seq, task="seq2seq", cell="gru", attention="bahdanau")
register_model("transformer", build_transformer_seq2seq, task="seq2seq")
