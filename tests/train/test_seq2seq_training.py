"""fit_seq2seq: the run directory it leaves, and a finished run that is loaded instead of retrained."""

import csv

import keras
import numpy as np
import tensorflow as tf

from kvision.data.text import CharacterVocabulary, WordPieceVocabulary
from kvision.models import build_rnn_seq2seq
from kvision.models.decoding import greedy_decode
from kvision.train import fit_seq2seq, get_strategy

PAIRS = [(w, " ".join(w.upper())) for w in ("ab", "ba", "abc", "cab", "bca", "cc", "a", "acb")] * 8


def fit(run_dir, epochs, strategy=None, **options):
    source, target = CharacterVocabulary("abc", max_length=5), WordPieceVocabulary.from_symbols(["A B C"], max_length=5)
    return fit_seq2seq(
        lambda: build_rnn_seq2seq(source.size, target.size, units=8, embedding_dim=4, num_layers=1),
        PAIRS, PAIRS[:16], source, target, run_dir=run_dir, epochs=epochs, batch_size=16, seed=0, verbose=0,
        strategy=strategy, **options,
    )


def test_two_replicas_follow_one_device(tmp_path):
    """Same initial weights and global batch of 16 on 1 and 2 logical CPUs.

    Not bit-equal: the loss is a mean over each replica's real (unpadded)
    target tokens, and the two halves of a batch hold different numbers of
    them, so the replicas' gradients are weighted slightly differently.
    """
    one = fit(tmp_path / "one", epochs=3, strategy=get_strategy(["/cpu:0"]))
    two = fit(tmp_path / "two", epochs=3, strategy=get_strategy(["/cpu:0", "/cpu:1"]))
    assert two.strategy.num_replicas_in_sync == 2
    np.testing.assert_allclose(two.history["loss"], one.history["loss"], rtol=1e-3)
    np.testing.assert_allclose(two.history["val_loss"], one.history["val_loss"], rtol=1e-3)
    assert one.history["loss"][-1] < one.history["loss"][0]


def test_a_finished_run_is_loaded_not_retrained(tmp_path, capsys):
    first = fit(tmp_path, epochs=2)
    assert len(first.history["loss"]) == 2 and first.best_checkpoint == tmp_path / "checkpoints" / "best.keras"
    with open(tmp_path / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [row["epoch"] for row in rows] == ["0", "1"] and "val_token_accuracy" in rows[0]
    assert not (tmp_path / "backup").exists()

    again = fit(tmp_path, epochs=2)
    assert again.history == {} and "training finished earlier (2 epochs)" in capsys.readouterr().out
    for a, b in zip(again.model.get_weights(), first.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    with open(tmp_path / "history.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 2  # nothing was trained or logged again


def test_mixed_precision_and_xla_train_like_float32(tmp_path):
    """Same seed and data: mixed_float16 losses within 1%, XLA within 0.1% of the float32 run's; both decode."""
    plain = fit(tmp_path / "plain", epochs=2)
    mixed = fit(tmp_path / "mixed", epochs=2, mixed_precision=True)
    xla = fit(tmp_path / "xla", epochs=2, xla=True)
    assert isinstance(mixed.model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert mixed.model.get_layer("logits").compute_dtype == "float32"
    assert mixed.model.get_layer("encoder_0").compute_dtype == "float16"
    assert keras.mixed_precision.dtype_policy().name == "float32", "the global policy is restored"
    assert xla.model.jit_compile
    np.testing.assert_allclose(mixed.history["loss"], plain.history["loss"], rtol=0.01)
    np.testing.assert_allclose(xla.history["loss"], plain.history["loss"], rtol=1e-3)
    source = tf.constant([[4, 5, 6, 0]], tf.int32)
    tokens, _ = greedy_decode(mixed.model, source, max_length=5)
    assert tokens.shape[0] == 1
