"""recipes/translate.py end to end on a small TSV corpus; g2p_cmudict.py's flags and refusals."""

import json
from pathlib import Path

import numpy as np
import pytest

from tests.recipes.helpers import run_in_process, run_recipe

DIGITS = {"zero": "zéro", "one": "un", "two": "deux", "three": "trois", "four": "quatre", "five": "cinq"}


def write_corpus(path, count=600, seed=0):
    """ManyThings-style lines: English digit words, their French words, an attribution column."""
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(count):
        words = list(rng.choice(list(DIGITS), rng.integers(1, 5)))
        lines.append(f"{' '.join(words)}\t{' '.join(DIGITS[w] for w in words)}\tCC-BY 2.0 #{i}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_translate_trains_evaluates_and_exports_a_servable_model(tmp_path):
    corpus = write_corpus(tmp_path / "digits.txt", count=400)
    result = run_recipe(
        "translate.py", "--pairs", corpus, "--epochs", 1, "--units", 32, "--layers", 1, "--batch-size", 32,
        "--lr", 0.01, "--beam-width", 3, "--vocabulary-size", 40, "--run-dir", tmp_path / "run",
        "--export-dir", tmp_path / "exports", "--version", 7, cwd=tmp_path, timeout=400,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout[result.stdout.index("{\n"):])
    report = json.loads((tmp_path / "run" / "evaluation" / "report.json").read_text())
    assert summary["test_bleu"] == report["bleu"] and 0 <= report["bleu"] <= 100
    assert summary["blessed"] is True and summary["saved_model"] == str(tmp_path / "exports" / "translate_digits" / "7")
    evaluation = json.loads((Path(summary["saved_model"]) / "evaluation.json").read_text())
    # A fresh process with TensorFlow and TensorFlow Text only decoded the test sources, an empty string,
    # unseen characters and an over-long input exactly as the recipe did.
    checks = {c["name"]: c for c in evaluation["checks"]}
    assert checks["SavedModel outputs differing from in-process decoding"]["value"] == 0
    assert checks["kvision or TF Serving modules in the server process"]["passed"]
    assert evaluation["parity"]["examples"] > 3 and "" in evaluation["parity"]["robustness"]
    assert evaluation["signatures"]["serving_default"]["outputs"] == {
        "outputs": {"dtype": "string", "shape": [-1]}, "scores": {"dtype": "float32", "shape": [-1]}}
    assert evaluation["signatures"]["translate_beams"]["outputs"]["outputs"]["shape"] == [-1, 3]
    assert evaluation["metrics"]["bleu"] == report["bleu"] and evaluation["dataset"]["name"] == "digits"
    assert (tmp_path / "run" / "vocabularies.json").exists() and (tmp_path / "run" / "evaluation" / "attention.png").exists()


@pytest.mark.parametrize(
    "script, args, message",
    [
        ("translate.py", ["--pairs", "missing.tsv"], "error: Expected a tab-separated pairs file. Received: path='missing.tsv'"),
        ("translate.py", ["--pairs", "one_column.tsv"], "error: Expected at least 2 tab-separated columns"),
        ("translate.py", ["--pairs", "ok.tsv", "--model", "lstm"], "error: Unknown seq2seq model name."),
        ("g2p_cmudict.py", ["--model", "resnet20"], "error: Unknown seq2seq model name."),
        ("g2p_cmudict.py", ["--keep-versions", "0"], "error: --keep-versions must be at least 1"),
    ],
)
def test_user_mistakes_get_one_line_and_no_output(tmp_path, script, args, message, monkeypatch):
    (tmp_path / "one_column.tsv").write_text("just one column\n")
    write_corpus(tmp_path / "ok.tsv", count=20)
    result = run_in_process(script, *args, "--run-dir", tmp_path / "run", "--export-dir", tmp_path / "exports",
                            cwd=tmp_path, monkeypatch=monkeypatch)
    assert result.returncode != 0 and message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists() and not (tmp_path / "exports").exists()


@pytest.mark.parametrize("script", ["g2p_cmudict.py", "translate.py"])
def test_help_documents_every_flag(script, tmp_path, monkeypatch):
    shown = run_in_process(script, "--help", cwd=tmp_path, monkeypatch=monkeypatch).stdout
    for flag in ("--mixed-precision", "--xla", "--model", "--units", "--layers", "--epochs", "--beam-width", "--length-penalty", "--max-source-length",
                 "--run-dir", "--export-dir", "--version", "--bless-max-wer", "--push-unblessed"):
        assert flag in shown
    assert ("--stress" if script == "g2p_cmudict.py" else "--pairs") in shown
