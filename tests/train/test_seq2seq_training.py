"""fit_seq2seq: the run directory it leaves, a finished run loaded instead of retrained, 1 vs 2 devices, speed switches."""

import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from kvision.data.text import CharacterVocabulary, WordPieceVocabulary
from kvision.models import build_rnn_seq2seq
from kvision.models.decoding import greedy_decode
from kvision.train import fit_seq2seq

ROOT = Path(__file__).resolve().parents[2]
PAIRS = [(w, " ".join(w.upper())) for w in ("ab", "ba", "abc", "cab", "bca", "cc", "a", "acb")] * 8


def fit(run_dir, epochs, strategy=None, **options):
    source, target = CharacterVocabulary("abc", max_length=5), WordPieceVocabulary.from_symbols(["A B C"], max_length=5)
    return fit_seq2seq(
        lambda: build_rnn_seq2seq(source.size, target.size, units=8, embedding_dim=4, num_layers=1),
        PAIRS, PAIRS[:16], source, target, run_dir=run_dir, epochs=epochs, batch_size=16, seed=0, verbose=0,
        strategy=strategy, **options,
    )


PARITY_SCRIPT = """
import json, sys, tempfile
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from kvision.train import get_strategy
from tests.train.test_seq2seq_training import fit
runs = [fit(tempfile.mkdtemp(), epochs=2, strategy=get_strategy(devices)).history for devices in (["/cpu:0"], ["/cpu:0", "/cpu:1"])]
print(json.dumps({key: [run[key] for run in runs] for key in ("loss", "val_loss")}))
"""


def test_a_finished_run_is_loaded_not_trained_again(tmp_path, capsys):
    first = fit(tmp_path, epochs=1)
    again = fit(tmp_path, epochs=1)
    assert again.history == {} and again.best_checkpoint == tmp_path / "checkpoints" / "best.keras"
    assert f"{tmp_path}: training finished earlier (1 epochs); loading best.keras" in capsys.readouterr().out
    for trained, loaded in zip(first.model.get_weights(), again.model.get_weights()):
        np.testing.assert_array_equal(loaded, trained)


def test_two_replicas_follow_one_device():
    """Same initial weights and global batch of 16 on 1 and 2 logical CPUs.

    Not bit-equal: the loss is a mean over each replica's real (unpadded)
    target tokens, and the two halves of a batch hold different numbers of
    them, so the replicas' gradients are weighted slightly differently. In
    its own process: MirroredStrategy objects of one process share collective
    keys, which other tests' strategies would meet.
    """
    done = subprocess.run([sys.executable, "-c", PARITY_SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    for key, (one, two) in result.items():
        np.testing.assert_allclose(two, one, rtol=1e-3, err_msg=key)
    assert result["loss"][0][-1] < result["loss"][0][0]


def test_mixed_precision_and_xla_train_like_float32(tmp_path):
    """Same seed and data: mixed_float16 losses within 1%, XLA within 0.1% of the float32 run's; both decode."""
    plain = fit(tmp_path / "plain", epochs=1)
    mixed = fit(tmp_path / "mixed", epochs=1, mixed_precision=True)
    xla = fit(tmp_path / "xla", epochs=1, xla=True)
    assert isinstance(mixed.model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert mixed.model.get_layer("logits").compute_dtype == "float32"
    assert mixed.model.get_layer("encoder_0").compute_dtype == "float16"
    assert keras.mixed_precision.dtype_policy().name == "float32", "the global policy is restored"
    assert xla.model.jit_compile
    np.testing.assert_allclose(mixed.history["loss"], plain.history["loss"], rtol=0.01)
    np.testing.assert_allclose(xla.history["loss"], plain.history["loss"], rtol=1e-3)
    source = tf.constant([[4, 5, 6, 0]], tf.int32)
    for model in (mixed.model, xla.model):
        tokens, log_probs = greedy_decode(model, source, max_length=5)
        assert tokens.shape == (1, 5) and np.isfinite(log_probs.numpy()).all()
