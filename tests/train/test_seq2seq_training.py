"""fit_seq2seq: the run directory it leaves, a finished run loaded instead of retrained, 1 vs 2 devices, speed
switches, the label-smoothed loss and checkpoint averaging across a resume."""

import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from kvision.data.text import END_ID, PAD_ID, CharacterVocabulary, WordPieceVocabulary
from kvision.errors import ModelError
from kvision.models import build_rnn_seq2seq
from kvision.models.decoding import greedy_decode
from kvision.train import fit_seq2seq, run_paths
from kvision.train.seq2seq import TokenCrossentropy
from tests.helpers import run_on_two_cpus
from tests.train.test_engine import InterruptAtEpoch

PAIRS = [(w, " ".join(w.upper())) for w in ("ab", "ba", "abc", "cab", "bca", "cc", "a", "acb")] * 8
EPOCHS = 2  # of the reference run and the runs compared with it


def vocabularies():
    """The source and target vocabularies of ``PAIRS``."""
    return CharacterVocabulary("abc", max_length=5), WordPieceVocabulary.from_symbols(["A B C"], max_length=5)


def tiny_model():
    """A one-way GRU encoder: fewer ops to trace than the default bidirectional LSTM, the same training code."""
    source, target = vocabularies()
    return build_rnn_seq2seq(source.size, target.size, units=8, embedding_dim=4, num_layers=1, cell="gru",
                             bidirectional=False)


def fit(run_dir, epochs, strategy=None, **options):
    source, target = vocabularies()
    return fit_seq2seq(
        tiny_model, PAIRS, PAIRS[:16], source, target, run_dir=run_dir, epochs=epochs, batch_size=16, seed=0,
        verbose=0, strategy=strategy, **options,
    )


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """``(run_dir, result)`` of a float32 run on one device: what the other runs are compared with. Read, never changed."""
    run_dir = tmp_path_factory.mktemp("plain")
    return run_dir, fit(run_dir, epochs=EPOCHS)


def test_a_finished_run_is_loaded_not_trained_again(plain, capsys):
    run_dir, first = plain
    again = fit(run_dir, epochs=EPOCHS)
    assert again.history == {} and again.best_checkpoint == run_dir / "checkpoints" / "best.keras"
    assert f"{run_dir}: training finished earlier ({EPOCHS} epochs); loading best.keras" in capsys.readouterr().out
    for trained, loaded in zip(first.model.get_weights(), again.model.get_weights()):
        np.testing.assert_array_equal(loaded, trained)


@pytest.mark.slow
def test_two_replicas_follow_one_device(plain):
    """Same initial weights and global batch of 16 on 2 logical CPUs as the one-device run.

    Not bit-equal: the loss is a mean over each replica's real (unpadded)
    target tokens, and the two halves of a batch hold different numbers of
    them, so the replicas' gradients are weighted slightly differently. In
    its own process: MirroredStrategy objects of one process share collective
    keys, which other tests' strategies would meet.
    """
    two = run_on_two_cpus("""
import tempfile
from kvision.train import get_strategy
from tests.train.test_seq2seq_training import EPOCHS, fit
history = fit(tempfile.mkdtemp(), epochs=EPOCHS, strategy=get_strategy(["/cpu:0", "/cpu:1"])).history
print(json.dumps({key: history[key] for key in ("loss", "val_loss")}))
""")
    one = plain[1].history
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose(two[key], one[key], rtol=1e-3, err_msg=key)
    assert one["loss"][-1] < one["loss"][0], "the compared runs learn"


def test_mixed_precision_and_xla_train_like_float32(plain, tmp_path):
    """Same seed and data: mixed_float16 losses within 1%, XLA within 0.1% of the float32 run's; both decode."""
    mixed = fit(tmp_path / "mixed", epochs=EPOCHS, mixed_precision=True)
    xla = fit(tmp_path / "xla", epochs=EPOCHS, xla=True)
    assert isinstance(mixed.model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert mixed.model.get_layer("logits").compute_dtype == "float32"
    assert mixed.model.get_layer("encoder_0").compute_dtype == "float16"
    assert keras.mixed_precision.dtype_policy().name == "float32", "the global policy is restored"
    assert xla.model.jit_compile
    np.testing.assert_allclose(mixed.history["loss"], plain[1].history["loss"], rtol=0.01)
    np.testing.assert_allclose(xla.history["loss"], plain[1].history["loss"], rtol=1e-3)
    source = tf.constant([[4, 5, 6, 0]], tf.int32)
    for model in (mixed.model, xla.model):
        tokens, log_probs = greedy_decode(model, source, max_length=5)
        assert tokens.shape == (1, 5) and np.isfinite(log_probs.numpy()).all()


# Ids [PAD] [UNK] [START] [END] A B, and one next-token distribution over them.
A = 4
PROBS = np.array([0.1, 0.1, 0.1, 0.2, 0.4, 0.1])


def test_label_smoothing_matches_the_hand_computed_loss_and_ignores_padding():
    # ε = 0.1 spread over the 4 tokens a decoder can emit ([UNK] [END] A B), none on [PAD] and [START]:
    # label A:     0.9 · −log 0.4 + 0.1 · −(log 0.1 + log 0.2 + log 0.4 + log 0.1) / 4 = 1.0029341
    # label [END]: 0.9 · −log 0.2 + 0.1 · (the same uniform part)                     = 1.6267666
    labels = np.array([[A, END_ID, PAD_ID]])
    logits = np.log(np.stack([PROBS, PROBS, PROBS]))[None].astype("float32")  # (1, 3, 6)
    weights = np.array([[1.0, 1.0, 0.0]])  # text_pipeline's: 0 on padding
    loss = TokenCrossentropy(0.1)
    # Keras' sum_over_batch_size divides by all 3 positions, as the unsmoothed loss always did.
    assert float(loss(labels, logits, sample_weight=weights)) == pytest.approx((1.0029341 + 1.6267666) / 3, rel=1e-6)
    noisy = logits.copy()
    noisy[0, 2] = np.random.default_rng(0).normal(0, 50, 6)  # the padded position says anything
    assert float(loss(labels, noisy, sample_weight=weights)) == float(loss(labels, logits, sample_weight=weights))
    # ε = 0 is the plain sparse cross-entropy, to the bit.
    random_logits = np.random.default_rng(1).normal(0, 3, (2, 3, 6)).astype("float32")
    labels = np.array([[A, END_ID, PAD_ID], [5, 1, END_ID]])
    plain = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    assert float(TokenCrossentropy()(labels, random_logits, sample_weight=weights.repeat(2, 0))) == float(
        plain(labels, random_logits, sample_weight=weights.repeat(2, 0)))
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(restored, TokenCrossentropy) and restored.label_smoothing == 0.1
    with pytest.raises(ModelError, match=r"label_smoothing must be in \[0, 1\). Received: label_smoothing=1.0"):
        TokenCrossentropy(1.0)


def weights_of(path):
    """The weights a weights or ``.keras`` file of a ``fit`` run holds."""
    model = tiny_model()
    model.load_weights(path)
    return model.get_weights()


def test_averaging_after_a_resume_takes_the_last_epochs_of_the_whole_run(tmp_path):
    common = dict(epochs=3, average_last=2, label_smoothing=0.1)
    with pytest.raises(KeyboardInterrupt):
        fit(tmp_path, callbacks=[InterruptAtEpoch(2)], **common)
    folder = run_paths(tmp_path)["epochs"]
    assert sorted(path.name for path in folder.iterdir()) == ["epoch0001.weights.h5", "epoch0002.weights.h5"]
    first, second = weights_of(folder / "epoch0001.weights.h5"), weights_of(folder / "epoch0002.weights.h5")
    # Killed after epoch 3's weights were written, before its backup: a stale file the resumed run must replace.
    shutil.copy(folder / "epoch0001.weights.h5", folder / "epoch0003.weights.h5")

    resumed = fit(tmp_path, **common)
    assert len(resumed.history["loss"]) == 1, "epoch 3 only"
    assert resumed.averaged_epochs == (2, 3), "epoch 2 from before the kill, epoch 3 from after"
    assert sorted(path.name for path in folder.iterdir()) == ["epoch0002.weights.h5", "epoch0003.weights.h5"]
    third = weights_of(folder / "epoch0003.weights.h5")
    assert not all(np.array_equal(a, b) for a, b in zip(third, first)), "the stale file was replaced"
    for got, a, b in zip(resumed.model.get_weights(), second, third):
        np.testing.assert_allclose(got, (a.astype(np.float64) + b) / 2, rtol=1e-6)
    for a, b in zip(weights_of(run_paths(tmp_path)["last"]), third):
        np.testing.assert_array_equal(a, b)  # epoch 3's file holds the last epoch's weights
    assert resumed.model.loss.label_smoothing == 0.1

    again = fit(tmp_path, **common)  # a finished run: loaded and averaged again, not trained
    assert again.history == {} and again.averaged_epochs == (2, 3)
    for a, b in zip(again.model.get_weights(), resumed.model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_averaging_more_epochs_than_trained_is_refused(tmp_path):
    with pytest.raises(ModelError, match="average_last must be an integer from 0 to epochs=2. Received: average_last=3"):
        fit(tmp_path, epochs=2, average_last=3)
    assert not run_paths(tmp_path)["epochs"].exists()
