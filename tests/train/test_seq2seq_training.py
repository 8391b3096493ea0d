"""fit_seq2seq: the run directory it leaves, and a finished run that is loaded instead of retrained."""

import csv

import numpy as np

from kvision.data.text import CharacterVocabulary, WordPieceVocabulary
from kvision.models import build_rnn_seq2seq
from kvision.train import fit_seq2seq

PAIRS = [(w, " ".join(w.upper())) for w in ("ab", "ba", "abc", "cab", "bca", "cc", "a", "acb")] * 8


def fit(run_dir, epochs):
    source, target = CharacterVocabulary("abc", max_length=5), WordPieceVocabulary.from_symbols(["A B C"], max_length=5)
    return fit_seq2seq(
        lambda: build_rnn_seq2seq(source.size, target.size, units=8, embedding_dim=4, num_layers=1),
        PAIRS, PAIRS[:16], source, target, run_dir=run_dir, epochs=epochs, batch_size=16, seed=0, verbose=0,
    )


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
