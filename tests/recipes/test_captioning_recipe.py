"""recipes/captioning.py end to end on scenes composed from tiny IDX files, as a user runs it."""

import json
from pathlib import Path

import pytest
import tensorflow as tf

from tests.data.writers import write_idx_dataset
from tests.recipes.helpers import run_in_process, run_recipe, summary_of


@pytest.fixture(scope="module")
def items(tmp_path_factory):
    """A tiny Fashion-MNIST of 14×14 items, for 32×32 scenes (a quarter of the default's pixels: a faster test)."""
    return write_idx_dataset(tmp_path_factory.mktemp("items"), train_count=60, test_count=20, size=14).path


@pytest.mark.slow
def test_captioning_composes_scenes_trains_reports_bleu_and_exports(items, tmp_path):
    result = run_recipe("captioning.py", "--items-dir", items, "--data-dir", tmp_path / "scenes", "--canvas", 32,
                        "--scenes", 64, "--validation-scenes", 16, "--test-scenes", 24, "--epochs", 1, "--units", 16, "--batch-size", 32,
                        "--run-dir", tmp_path / "run", "--export-dir", tmp_path / "exports", "--version", 4,
                        cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = summary_of(result.stdout)
    report = json.loads((tmp_path / "run" / "evaluation" / "report.json").read_text())
    assert report["images"] == report["captions"] == 24 and report["beam_width"] == 3
    for key in ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "exact_match", "item_match", "scene_item_match"):
        assert 0 <= report[key] <= 1
    assert report["bleu_1"] >= report["bleu_4"]
    assert summary["test_bleu_4"] == report["bleu_4"] and summary["test_item_match"] == report["item_match"]
    predictions = (tmp_path / "run" / "evaluation" / "predictions.tsv").read_text().splitlines()
    assert len(predictions) == 25 and predictions[0] == "index\toutput\tscore\treferences\tcorrect"
    assert tf.io.decode_png(tf.io.read_file(report["files"]["attention"])).shape[0] > 0
    assert (tmp_path / "run" / "vocabulary.json").exists() and (tmp_path / "scenes" / "test.tsv").exists()
    assert summary["blessed"] is True and summary["saved_model"] == str(tmp_path / "exports" / "scenes_captioner" / "4")
    evaluation = json.loads((Path(summary["saved_model"]) / "evaluation.json").read_text())
    assert evaluation["metrics"]["bleu_4"] == report["bleu_4"]
    assert set(evaluation["signatures"]) == {"serving_default", "caption_beams"}
    assert "SavedModel captions differing from in-process decoding" in result.stdout  # the fresh-process round trip


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "show_attend_tel"], "Did you mean show_attend_tell"),
        (["--backbone", "dcgan_generator"], "Unknown classifier model name"),
        (["--dataset", "folder"], "Expected --data-dir with the captions files"),
        (["--keep-versions", "0"], "--keep-versions must be at least 1"),
    ],
)
def test_user_mistakes_get_one_line_and_no_output(items, tmp_path, args, message, monkeypatch):
    result = run_in_process("captioning.py", "--items-dir", items, *args, "--run-dir", tmp_path / "run", "--export-dir",
                            tmp_path / "exports", cwd=tmp_path, monkeypatch=monkeypatch)
    assert result.returncode != 0 and message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists() and not (tmp_path / "exports").exists()


def test_help_documents_every_flag(tmp_path, monkeypatch):
    shown = run_in_process("captioning.py", "--help", cwd=tmp_path, monkeypatch=monkeypatch).stdout
    for flag in ("--dataset", "--data-dir", "--items-dir", "--scenes", "--canvas", "--image-size", "--limit", "--backbone",
                 "--attention-regularization", "--beam-width", "--epochs", "--mixed-precision", "--bless-min-bleu-4",
                 "--push-unblessed"):
        assert flag in shown
