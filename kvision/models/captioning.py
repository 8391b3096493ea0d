"""Image captioning: a CNN encoder and a recurrent decoder with soft attention (Show, Attend and Tell).

Xu et al. 2015 (https://arxiv.org/abs/1502.03044): the encoder keeps the
spatial feature map of a registered classifier backbone as ``L = h × w``
annotation vectors; before every word the decoder attends over them from its
previous state, gates the context, and reads it with the previous word. The
attention is "doubly stochastic": besides summing to one over locations at
each step, it is pushed to sum to about one over the caption at each location.

The model is ``{"image": float32[B, H, W, C] in 0..255, "target_in": int32[B, T]}
→ logits[B, T, V]``, trained with teacher forcing like the seq2seq models, and
``captioning_parts`` gives the decoders of ``kvision.models.decoding`` the
same encode/decode pieces as a seq2seq model, so greedy and beam search are
shared.
"""

import keras
import tensorflow as tf
from keras import layers, ops

from kvision.data.text import PAD_ID
from kvision.models.common import is_positive_int, require
from kvision.models.registry import build, get_builder, register_model
from kvision.models.seq2seq import Seq2SeqParts

CAPTION_CELLS = {"lstm": layers.LSTMCell, "gru": layers.GRUCell}


@keras.saving.register_keras_serializable(package="kvision")
class SoftAttentionDecoder(layers.Layer):
    """An LSTM/GRU cell that attends over image locations before every step.

    At step ``t``, from the previous hidden state ``h``: ``eₗ = vᵀ tanh(W_a aₗ + W_h h)``,
    ``α = softmax(e)`` over the ``L`` locations, context ``z = σ(W_β h) · Σₗ αₗ aₗ``;
    the cell reads ``[x_t, z]``.

    Called on ``[inputs [B, T, E], features [B, L, D], tokens [B, T], *states]``,
    returns ``[outputs [B, T, units], contexts [B, T, D], attention [B, T, L], *states]``.
    ``tokens`` (the decoder's input ids) mark the real steps: with
    ``attention_regularization`` λ > 0 the layer adds the loss
    ``λ · mean over images and locations of (1 − Σₜ αₜₗ)²``, summing over real
    steps only (the paper's doubly stochastic regularisation, averaged over
    locations so λ does not depend on the feature map's size).
    """

    def __init__(self, units, *, cell="lstm", attention_units=None, attention_regularization=1.0, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.cell_type = cell
        self.attention_units = attention_units or units
        self.attention_regularization = attention_regularization
        self.cell = CAPTION_CELLS[cell](units, name="cell")
        self.feature_key = layers.Dense(self.attention_units, use_bias=False, name="feature_key")
        self.state_query = layers.Dense(self.attention_units, name="state_query")
        self.score = layers.Dense(1, use_bias=False, name="score")
        self.gate = layers.Dense(1, activation="sigmoid", name="gate")

    @property
    def num_states(self):
        return 2 if self.cell_type == "lstm" else 1

    def build(self, input_shape):
        inputs_shape, features_shape = input_shape[0], input_shape[1]
        depth = features_shape[-1]
        self.cell.build((None, inputs_shape[-1] + depth))
        self.feature_key.build((None, None, depth))
        self.state_query.build((None, self.units))
        self.score.build((None, None, self.attention_units))
        self.gate.build((None, self.units))

    def attend(self, keys, features, h):
        """``(context [B, D], weights [B, L])`` of state ``h`` over the locations (keys precomputed)."""
        scores = self.score(ops.tanh(keys + self.state_query(h)[:, None, :]))[..., 0]
        weights = ops.softmax(scores, axis=-1)
        context = ops.sum(weights[..., None] * features, axis=1) * self.gate(h)
        return context, weights

    def call(self, inputs, training=None):
        x, features, tokens, *states = inputs
        keys = self.feature_key(features)  # once per image, not per step
        n = self.num_states

        def step(carry, x_t):
            context, weights = self.attend(keys, features, carry[0])
            output, new_states = self.cell(ops.concatenate([x_t, context], axis=-1), list(carry[:n]), training=training)
            return (*new_states, output, context, weights)

        batch, locations = ops.shape(features)[0], ops.shape(features)[1]
        start = (
            *states,
            ops.zeros((batch, self.units), x.dtype),
            ops.zeros((batch, features.shape[-1]), x.dtype),
            ops.zeros((batch, locations), x.dtype),
        )
        # tf.scan rather than keras.ops.scan: the latter's TensorFlow version breaks on nested carries.
        steps = tf.scan(step, ops.transpose(x, (1, 0, 2)), initializer=start)
        outputs, contexts, weights = (ops.transpose(s, (1, 0, 2)) for s in steps[n:])
        if self.attention_regularization:
            real = ops.cast(ops.not_equal(tokens, PAD_ID), "float32")[..., None]
            # [B, L]: attention each location got over the caption; float32 under mixed precision, as losses are.
            coverage = ops.sum(ops.cast(weights, "float32") * real, axis=1)
            self.add_loss(self.attention_regularization * ops.mean(ops.square(1.0 - coverage)))
        return [outputs, contexts, weights, *(s[-1] for s in steps[:n])]

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "cell": self.cell_type,
            "attention_units": self.attention_units,
            "attention_regularization": self.attention_regularization,
        }


def spatial_backbone(classifier, name="encoder"):
    """``classifier`` up to its last 4-D output: raw 0..255 images → feature map ``[B, h, w, C]``.

    The kvision CNN's last pooled block, a ResNet's last stage before global
    pooling. Layers are shared, not copied.
    """
    maps = [layer.output for layer in classifier.layers[1:] if len(layer.output.shape) == 4]
    require(maps, "Expected a convolutional classifier with a 4-D feature map.", model=classifier.name)
    return keras.Model(classifier.input, maps[-1], name=name)


def caption_encode(named, images, training=None):
    """``(features [B, L, D], location mask [B, L] (all True), initial decoder states)``."""
    maps = named["encoder"](ops.cast(images, "float32"), training=training)
    _, height, width, channels = maps.shape
    features = named["feature_projection"](ops.reshape(maps, (-1, height * width, channels)))
    mean = ops.mean(features, axis=1)
    states = [named[f"init_{i}"](mean) for i in range(named["decoder"].num_states)]
    return features, ops.ones_like(features[..., 0], dtype="bool"), states


def caption_decode(named, target_in, features, mask, states, training=None):
    """``(logits [B, T, V], new states, attention [B, T, L])`` for the decoder inputs ``target_in``.

    The deep output layer reads the RNN output, the context and the previous
    word (the paper's ``L_o(E y + L_h h + L_z z)``, with a tanh).
    """
    x = named["dropout"](named["embedding"](target_in), training=training)
    outputs, contexts, weights, *states = named["decoder"]([x, features, target_in, *states], training=training)
    deep = named["deep_output"](ops.concatenate([outputs, contexts, x], axis=-1))
    return named["logits"](named["dropout"](deep, training=training)), states, weights


def build_show_attend_tell(
    input_shape,
    vocab_size,
    *,
    backbone="cnn",
    backbone_options=None,
    cell="lstm",
    units=256,
    embedding_dim=128,
    feature_dim=256,
    attention_units=256,
    attention_regularization=1.0,
    dropout=0.3,
    name="show_attend_tell",
):
    """An image captioner: CNN feature map → soft-attention LSTM/GRU decoder (Xu et al. 2015).

    Args:
        input_shape: ``(height, width, channels)`` of the raw 0..255 images.
        vocab_size: caption vocabulary size (id 0 = padding).
        backbone: any registered classifier (``cnn``, ``resnet20``, …); its
            last 4-D feature map is kept (``spatial_backbone``).
        backbone_options: keyword options of that builder (``filters``, ``mean``, ``std`` …).
        cell: ``"lstm"`` or ``"gru"``.
        units: decoder state size.
        feature_dim: size each location's features are projected to.
        attention_regularization: λ of the doubly stochastic attention loss (0: off).
        dropout: on word embeddings and before the logits.
    """
    require(is_positive_int(vocab_size), "vocab_size must be a positive integer.", vocab_size=vocab_size)
    require(cell in CAPTION_CELLS, f"cell must be one of {', '.join(CAPTION_CELLS)}.", cell=cell)
    for label, value in (("units", units), ("embedding_dim", embedding_dim), ("feature_dim", feature_dim),
                         ("attention_units", attention_units)):
        require(is_positive_int(value), f"{label} must be a positive integer.", **{label: value})
    require(attention_regularization >= 0, "attention_regularization must be >= 0.",
            attention_regularization=attention_regularization)
    get_builder(backbone, "classifier")  # a clear error for an unknown or non-classifier name
    encoder = spatial_backbone(build(backbone, input_shape, 1, **(backbone_options or {})))
    decoder = SoftAttentionDecoder(
        units, cell=cell, attention_units=attention_units, attention_regularization=attention_regularization,
        name="decoder",
    )
    named = {
        "encoder": encoder,
        "feature_projection": layers.Dense(feature_dim, activation="relu", name="feature_projection"),
        **{f"init_{i}": layers.Dense(units, activation="tanh", name=f"init_{i}") for i in range(decoder.num_states)},
        "embedding": layers.Embedding(vocab_size, embedding_dim, name="embedding"),
        "decoder": decoder,
        "dropout": layers.Dropout(dropout, name="dropout"),
        "deep_output": layers.Dense(embedding_dim, activation="tanh", name="deep_output"),
        "logits": layers.Dense(vocab_size, dtype="float32", name="logits"),  # float32 under mixed precision
    }
    inputs = {
        "image": keras.Input(shape=tuple(input_shape), dtype="float32", name="image"),
        "target_in": keras.Input(shape=(None,), dtype="int32", name="target_in"),
    }
    features, mask, states = caption_encode(named, inputs["image"])
    logits, _, _ = caption_decode(named, inputs["target_in"], features, mask, states)
    return keras.Model(inputs, logits, name=name)


def is_captioner(model):
    """True for a model built by ``build_show_attend_tell`` (or loaded from one's ``.keras`` file)."""
    return any(isinstance(layer, SoftAttentionDecoder) for layer in model.layers)


def captioning_parts(model):
    """``Seq2SeqParts`` of a captioner: the image is the source, decoding is incremental."""
    require(is_captioner(model), "Expected a model built by build_show_attend_tell.", model=model.name)
    named = {layer.name: layer for layer in model.layers}
    return Seq2SeqParts(
        lambda images: caption_encode(named, images),
        lambda *args: caption_decode(named, *args),
        incremental=True,
        max_target_length=None,
        source_dtype="float32",
    )


register_model("show_attend_tell", build_show_attend_tell, task="captioning")
register_model("show_attend_tell_gru", build_show_attend_tell, task="captioning", cell="gru")
