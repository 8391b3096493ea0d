"""Training image captioners with teacher forcing, through the seq2seq engine.

The loss is the cross-entropy of each next caption token over real (unpadded)
tokens, plus the decoder's doubly stochastic attention loss (added by the
``SoftAttentionDecoder`` layer, so ``fit`` and ``evaluate`` include it).
"""

import keras

from kvision.data.captions import caption_pipeline
from kvision.train.seq2seq import fit_teacher_forced
from kvision.train.strategy import get_strategy


def fit_captioner(model_fn, train_set, validation_set, vocab, *, batch_size=64, seed=None, strategy=None, **options):
    """Train the captioner ``model_fn()`` builds on ``CaptionSet``s; options as for ``fit_teacher_forced``.

    Args:
        model_fn: zero-argument callable returning an uncompiled captioner
            (``kvision.models.build_show_attend_tell`` …), called in the strategy scope.
        train_set, validation_set: ``kvision.data.captions.CaptionSet``.
        vocab: the caption vocabulary (``kvision.data.text``).
        batch_size: global batch size.
    """
    strategy = strategy or get_strategy()  # before any op: a multi-worker strategy must exist first
    if seed is not None:
        keras.utils.set_random_seed(seed)
    train_ds, steps_per_epoch = caption_pipeline(train_set, vocab, batch_size=batch_size, training=True, seed=seed)
    val_ds, _ = caption_pipeline(validation_set, vocab, batch_size=batch_size, training=False)
    return fit_teacher_forced(model_fn, train_ds, val_ds, steps_per_epoch=steps_per_epoch, strategy=strategy, **options)
