"""Decoding trained seq2seq and captioning models: greedy search, beam search, ``Translator`` and ``Captioner``.

Everything is TensorFlow ops in ``tf.while_loop``s, so the whole search runs
inside ``tf.function`` and is saved in a SavedModel. Beam search is written
here rather than taken from ``keras_hub.samplers.BeamSampler`` because a
sequence-to-sequence search needs two things that sampler lacks: finished
hypotheses must stop accumulating log-probability, and a length penalty.
"""

import tensorflow as tf

from kvision.data.decode import ImageLimits, decode_images
from kvision.data.text import END_ID, NEVER_GENERATED, PAD_ID, START_ID
from kvision.errors import ModelError
from kvision.models.captioning import captioning_parts, is_captioner
from kvision.models.seq2seq import seq2seq_parts

_NEG = -1e9  # log-probability of an impossible choice (finite, so sums stay finite)


def decoding_parts(model):
    """The encode/decode pieces of a seq2seq model or a captioner (``Seq2SeqParts``)."""
    return captioning_parts(model) if is_captioner(model) else seq2seq_parts(model)


def length_penalty(lengths, alpha):
    """GNMT's ((5 + length) / 6) ** alpha (Wu et al. 2016); 1 when ``alpha`` is 0."""
    return ((5.0 + tf.cast(lengths, tf.float32)) / 6.0) ** alpha


def _next_log_probs(parts, buffer, index, encoded):
    """Log-probabilities of the token after position ``index`` of ``buffer``, and the new states.

    ``[PAD]`` and ``[START]`` are never generated (``NEVER_GENERATED``).
    """
    encoder_outputs, mask, states = encoded
    if parts.incremental:
        logits, states, _ = parts.decode(buffer[:, index : index + 1], encoder_outputs, mask, states)
        logits = logits[:, 0]
    else:
        logits, states, _ = parts.decode(buffer[:, : index + 1], encoder_outputs, mask, states)
        logits = logits[:, -1]
    log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32))
    never = tf.reduce_any(tf.range(tf.shape(log_probs)[1])[:, None] == tf.constant(NEVER_GENERATED)[None, :], axis=1)
    return tf.where(never[None, :], _NEG, log_probs), states


def _start_buffer(rows, max_length):
    """``[START, PAD, PAD, …]`` rows of ``max_length + 1`` token ids."""
    return tf.pad(tf.fill([rows, 1], START_ID), [[0, 0], [0, max_length]], constant_values=PAD_ID)


def _write(buffer, index, tokens):
    """``buffer`` with column ``index`` replaced by ``tokens``."""
    return tf.where(tf.range(tf.shape(buffer)[1])[None, :] == index, tokens[:, None], buffer)


def _check_max_length(parts, max_length):
    if parts.max_target_length is not None and max_length > parts.max_target_length:
        raise ModelError(
            f"max_length must not exceed the model's target length {parts.max_target_length}. "
            f"Received: max_length={max_length}"
        )


def greedy_decode(model, source, *, max_length):
    """The most likely next token at every step.

    Args:
        model: a model from ``build_rnn_seq2seq`` / ``build_transformer_seq2seq``,
            or a captioner from ``build_show_attend_tell``.
        source: ``int32[B, S]`` token ids, 0-padded; for a captioner, images
            ``float32[B, H, W, C]`` in 0..255.
        max_length: most tokens generated, ``[END]`` included.

    Returns:
        ``(tokens int32[B, max_length], log_probs float32[B])``: tokens after
        ``[START]``, ``[END]`` then padding once a sequence has ended.
    """
    parts = decoding_parts(model)
    _check_max_length(parts, max_length)
    source = tf.cast(source, parts.source_dtype)
    batch = tf.shape(source)[0]
    encoded = parts.encode(source)

    def body(index, buffer, encoded, finished, score):
        log_probs, states = _next_log_probs(parts, buffer, index, encoded)
        tokens = tf.where(finished, PAD_ID, tf.argmax(log_probs, axis=-1, output_type=tf.int32))
        score += tf.where(finished, 0.0, tf.gather(log_probs, tokens, batch_dims=1))
        return (index + 1, _write(buffer, index + 1, tokens), (*encoded[:2], states), finished | (tokens == END_ID), score)

    _, buffer, _, _, score = tf.while_loop(
        lambda index, buffer, encoded, finished, score: (index < max_length) & ~tf.reduce_all(finished),
        body,
        (tf.constant(0), _start_buffer(batch, max_length), encoded, tf.zeros([batch], tf.bool), tf.zeros([batch])),
    )
    return buffer[:, 1:], score


def beam_search(model, source, *, beam_width=5, max_length, alpha=0.0):
    """The ``beam_width`` best hypotheses per source, best first.

    Each step extends every live hypothesis by every token and keeps the
    ``beam_width`` best by ``log P / length_penalty(length, alpha)``; a
    hypothesis that produced ``[END]`` is kept unchanged (padded, at no cost)
    and competes with the live ones until the search ends. With
    ``beam_width=1`` and ``alpha=0`` this is greedy search.

    Returns:
        ``(tokens int32[B, beam_width, max_length], scores float32[B, beam_width])``,
        scores being length-normalised log-probabilities, in descending order.
    """
    parts = decoding_parts(model)
    _check_max_length(parts, max_length)
    if not (isinstance(beam_width, int) and beam_width >= 1):
        raise ModelError(f"beam_width must be a positive integer. Received: beam_width={beam_width!r}")
    k = beam_width
    source = tf.cast(source, parts.source_dtype)
    batch = tf.shape(source)[0]
    encoded = tf.nest.map_structure(lambda x: tf.repeat(x, k, axis=0), parts.encode(source))
    # Only the first beam of each source is live at the start; the others are copies.
    log_p = tf.tile(tf.constant([0.0] + [_NEG] * (k - 1)), [batch])

    def body(index, buffer, encoded, finished, lengths, log_p):
        log_probs, states = _next_log_probs(parts, buffer, index, encoded)
        vocab = tf.shape(log_probs)[1]
        pad_only = tf.where(tf.range(vocab) == PAD_ID, 0.0, _NEG)[None, :]
        log_probs = tf.where(finished[:, None], pad_only, log_probs)
        candidates = log_p[:, None] + log_probs
        new_lengths = lengths + tf.cast(~finished, tf.int32)
        normalised = candidates / length_penalty(new_lengths, alpha)[:, None]
        _, best = tf.math.top_k(tf.reshape(normalised, [batch, k * vocab]), k)
        origin = tf.reshape(tf.range(batch)[:, None] * k + best // vocab, [-1])
        tokens = tf.reshape(best % vocab, [-1])
        log_p = tf.gather(tf.reshape(candidates, [-1]), origin * vocab + tokens)
        gather = lambda x: tf.gather(x, origin)  # noqa: E731
        return (
            index + 1,
            _write(gather(buffer), index + 1, tokens),
            (*encoded[:2], tf.nest.map_structure(gather, states)),
            gather(finished) | (tokens == END_ID),
            gather(new_lengths),
            log_p,
        )

    _, buffer, _, _, lengths, log_p = tf.while_loop(
        lambda index, buffer, encoded, finished, lengths, log_p: (index < max_length) & ~tf.reduce_all(finished),
        body,
        (
            tf.constant(0),
            _start_buffer(batch * k, max_length),
            encoded,
            tf.zeros([batch * k], tf.bool),
            tf.zeros([batch * k], tf.int32),
            log_p,
        ),
    )
    scores = tf.reshape(log_p / length_penalty(lengths, alpha), [batch, k])
    scores, order = tf.math.top_k(scores, k)
    tokens = tf.gather(tf.reshape(buffer[:, 1:], [batch, k, max_length]), order, batch_dims=1)
    return tokens, scores


def attention_weights(model, source, target_in):
    """Attention weights ``[B, T, S]`` of an RNN model or captioner (``S``: image locations) reading ``target_in``.

    ``target_in`` is e.g. ``[START]`` + the model's own output.
    """
    parts = decoding_parts(model)
    if not parts.incremental:
        raise ModelError(f"Attention weights are returned by the RNN models only. Received: model={model.name!r}")
    source = tf.cast(source, parts.source_dtype)
    _, _, weights = parts.decode(tf.convert_to_tensor(target_in, tf.int32), *parts.encode(source))
    return weights


def strip_special(tokens):
    """Ragged ids: each row of ``tokens`` up to its first ``[END]``, without padding."""
    before_end = tf.math.cumsum(tf.cast(tokens == END_ID, tf.int32), axis=-1) == 0
    return tf.ragged.boolean_mask(tokens, before_end & (tokens != PAD_ID))


class _Decoder(tf.Module):
    """Search and detokenisation shared by ``Translator`` and ``Captioner``.

    Outputs have at most ``target_vocab.max_length`` tokens: a hypothesis
    that has not produced ``[END]`` by then is cut. ``beam_width`` 1 is
    greedy search; ``alpha`` is the beam search's length-penalty exponent.
    """

    def __init__(self, model, target_vocab, *, beam_width, alpha, name):
        super().__init__(name=name)
        self.model = model
        self.target_vocab = target_vocab
        self.beam_width = beam_width
        self.alpha = alpha
        self.max_length = target_vocab.max_length
        _check_max_length(decoding_parts(model), self.max_length)

    def search(self, source):
        """``beam_search`` of ``source`` with this decoder's settings: ``(tokens [N, K, L], scores [N, K])``."""
        return beam_search(self.model, source, beam_width=self.beam_width, max_length=self.max_length, alpha=self.alpha)

    def best(self, source):
        """``(text string[N], score float32[N])``: the best hypothesis for each source."""
        if self.beam_width == 1:
            tokens, scores = greedy_decode(self.model, source, max_length=self.max_length)
            return self.target_vocab.detokenize(strip_special(tokens)), scores
        texts, scores = self.beams(source)
        return texts[:, 0], scores[:, 0]

    def beams(self, source):
        """``(text string[N, K], score float32[N, K])``: every beam, best first."""
        tokens, scores = self.search(source)
        flat = self.target_vocab.detokenize(strip_special(tf.reshape(tokens, [-1, self.max_length])))
        return tf.reshape(flat, tf.shape(scores)), scores


class Translator(_Decoder):
    """Strings in, strings out: tokenisation, search and detokenisation in one TensorFlow graph.

    Sources are cut to ``source_vocab.max_length`` tokens (characters or word
    pieces); an empty source reads as all padding; unseen characters or
    words become ``[UNK]``.

    Args:
        model: a trained seq2seq model.
        source_vocab, target_vocab: the vocabularies it was trained with.
        beam_width: 1 is greedy search.
        alpha: length-penalty exponent of the beam search.
    """

    def __init__(self, model, source_vocab, target_vocab, *, beam_width=5, alpha=0.0):
        super().__init__(model, target_vocab, beam_width=beam_width, alpha=alpha, name="translator")
        self.source_vocab = source_vocab

    def source_ids(self, texts):
        """``int32[N, S]``: the cut source tokens, right-padded; ``S`` ≥ 1 even when every text is empty."""
        ids = self.source_vocab.tokenize(texts)[:, : self.source_vocab.max_length].to_tensor(default_value=PAD_ID)
        return tf.pad(ids, [[0, 0], [0, tf.maximum(0, 1 - tf.shape(ids)[1])]])

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def translate_beams(self, texts):
        """``{"outputs": string[N, K], "scores": float32[N, K]}``: every beam, best first."""
        outputs, scores = self.beams(self.source_ids(texts))
        return {"outputs": outputs, "scores": scores}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def translate(self, texts):
        """``{"outputs": string[N], "scores": float32[N]}``: the best hypothesis of each source and its score."""
        outputs, scores = self.best(self.source_ids(texts))
        return {"outputs": outputs, "scores": scores}


class Captioner(_Decoder):
    """Encoded images in, captions out: decoding, resizing, search and detokenisation in one graph.

    Images of any size are converted to the model's channels and resized to
    its input size (see ``kvision.data.decode.decode_images``).

    Args:
        model: a trained captioner (``build_show_attend_tell``).
        vocab: the caption vocabulary it was trained with.
        beam_width: 1 is greedy search.
        alpha: length-penalty exponent of the beam search.
        limits: ``ImageLimits`` of ``caption``'s requests (batch size, bytes
            and pixels of each image, checked before decoding).
    """

    def __init__(self, model, vocab, *, beam_width=5, alpha=0.0, limits=ImageLimits()):
        super().__init__(model, vocab, beam_width=beam_width, alpha=alpha, name="captioner")
        self.image_shape = tuple(model.input["image"].shape[1:])
        self.limits = limits

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def caption(self, image_bytes):
        """``{"captions": string[N], "scores": float32[N]}``: the best caption of each image and its score."""
        images = decode_images(image_bytes, self.image_shape, self.limits, signature="serving_default")
        captions, scores = self.best(images)
        return {"captions": captions, "scores": scores}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def caption_beams(self, image_bytes):
        """``{"captions": string[N, K], "scores": float32[N, K]}``: every beam, best first."""
        images = decode_images(image_bytes, self.image_shape, self.limits, signature="caption_beams")
        captions, scores = self.beams(images)
        return {"captions": captions, "scores": scores}

    @tf.function(reduce_retracing=True)
    def caption_images(self, images):
        """``(captions string[N], scores float32[N])`` of decoded images ``float32[N, H, W, C]`` in 0..255."""
        return self.best(images)
