"""Seq2seq metrics: BLEU agrees with sacreBLEU, error rates with several references, the written report."""

import json

import numpy as np
import pytest
import sacrebleu
import tensorflow as tf

from kvision.data.text import CharacterVocabulary, WordPieceVocabulary
from kvision.evaluate.seq2seq import corpus_bleu, evaluate_seq2seq, sequence_error_rates
from kvision.models import build_rnn_seq2seq
from kvision.models.decoding import Translator
from kvision.train import compile_seq2seq
from tests.helpers import summary_events

HYPOTHESES = [
    "the cat sat on the mat.",
    "a quick brown fox jumps over the dog",
    "Hello there, general Kenobi!",
    "it is raining today in paris",
    "we will see, said the old man",
    "numbers like 3.14 and 2,000 count too",
]
REFERENCES = [
    "the cat sat on the mat.",
    "the quick brown fox jumped over the lazy dog",
    "hello there general kenobi",
    "today it rains in paris",
    "we shall see, said the old man.",
    "numbers such as 3.14 and 2,000 count as well",
]


def test_bleu_matches_sacrebleu():
    expected = sacrebleu.corpus_bleu(HYPOTHESES, [REFERENCES]).score
    assert corpus_bleu(HYPOTHESES, [[r] for r in REFERENCES]) == pytest.approx(expected, abs=0.01)
    assert corpus_bleu(REFERENCES, [[r] for r in REFERENCES]) == pytest.approx(100.0)


def test_bleu_with_two_references_matches_sacrebleu():
    second = [h.upper() if i % 2 else h for i, h in enumerate(HYPOTHESES)]
    expected = sacrebleu.corpus_bleu(HYPOTHESES, [REFERENCES, second]).score
    assert corpus_bleu(HYPOTHESES, [list(pair) for pair in zip(REFERENCES, second)]) == pytest.approx(expected, abs=0.01)


def test_error_rates_score_against_the_closest_reference():
    rates = sequence_error_rates(
        ["HH AH L OW", "T AH M EY T OW", "", "K AE T"],
        [["HH AH L OW", "HH EH L OW"], ["T AH M AA T OW", "T AH M EY T OW Z"], ["EY"], ["D AO G"]],
    )
    # Distances to the closest references: 0 (of 4), 1 (of 6, the shorter on a tie), 1 (of 1), 3 (of 3).
    assert rates["word_error_rate"] == pytest.approx(3 / 4)
    assert rates["exact_match"] == pytest.approx(1 / 4)
    assert rates["token_error_rate"] == pytest.approx(5 / 14)
    with pytest.raises(ValueError, match="one list of references per hypothesis"):
        sequence_error_rates(["A"], [])


def test_evaluate_seq2seq_writes_report_predictions_and_heat_maps(tmp_path):
    source_vocab = CharacterVocabulary("abc", max_length=6)
    target_vocab = WordPieceVocabulary.from_symbols(["A B C"], max_length=8)
    tf.keras.utils.set_random_seed(0)
    model = build_rnn_seq2seq(source_vocab.size, target_vocab.size, units=8, embedding_dim=4)
    compile_seq2seq(model, "adam")
    pairs = [("abc", "A B C"), ("ab", "A B"), ("ab", "A B B"), ("cab", "C A B"), ("c", "C")]
    translator = Translator(model, source_vocab, target_vocab, beam_width=2)
    report = evaluate_seq2seq(translator, pairs, tmp_path, log_dir=tmp_path / "logs", heat_maps=3)
    assert report["pairs"] == 5 and report["sources"] == 4
    assert 0 <= report["word_error_rate"] <= 1 and 0 <= report["token_accuracy"] <= 1
    rows = (tmp_path / "predictions.tsv").read_text().splitlines()
    assert rows[0].split("\t") == ["source", "output", "score", "references", "correct"]
    assert rows[2].split("\t")[3] == "A B | A B B"
    correct = np.mean([int(row.split("\t")[4]) for row in rows[1:]])
    assert correct == pytest.approx(report["exact_match"])
    assert json.loads((tmp_path / "report.json").read_text())["bleu"] == report["bleu"]
    heat_map = tf.io.decode_png(tf.io.read_file(str(tmp_path / "attention.png")))
    assert heat_map.shape[0] > 300 and heat_map.shape[1] > 300
    logged = summary_events(tmp_path / "logs" / "evaluation")
    scalars = [f"test/{key}" for key in ("bleu", "exact_match", "token_accuracy", "token_error_rate", "word_error_rate")]
    assert sorted(logged.Tags()["tensors"]) == ["attention", *scalars[:2], "test/predictions", *scalars[2:]]
    for tag in scalars:
        assert float(tf.make_ndarray(logged.Tensors(tag)[0].tensor_proto)) == pytest.approx(report[tag[5:]], abs=1e-6)
