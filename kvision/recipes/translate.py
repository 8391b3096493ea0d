"""Translation (or any text-to-text task) from a tab-separated pairs file.

    kvision train translate --pairs fra.txt                 # ManyThings/Tatoeba "English<TAB>French<TAB>…"
    kvision train translate --pairs fra.txt --model transformer --lr 1e-3
    kvision train translate --pairs pairs.tsv --reverse     # translate column 2 into column 1

Sentences are split into train/validation/test by a hash of the source
sentence, so a sentence's several translations stay in one split. Both sides
get a WordPiece vocabulary learned from the training split (lower-cased).
Reported on the test split, with beam search: corpus BLEU (keras-hub, the
same figure sacreBLEU gives), word error rate (sentences matching none of
their references) and token error rate.
"""

from pathlib import Path

from kvision.data.text import WordPieceVocabulary, read_pairs, split_by_source
from kvision.recipes.seq2seq import build_parser, run, run_seq2seq


def translate(args, *, rules):
    """Read and split the pairs, then train, evaluate and export (``seq2seq.run``)."""
    columns = (1, 0) if args.reverse else (0, 1)
    pairs = read_pairs(args.pairs, source_column=columns[0], target_column=columns[1], limit=args.limit)
    splits = split_by_source(pairs, validation=args.validation_fraction, test=args.test_fraction)

    def make_vocabularies():
        sources, targets = zip(*splits["train"])
        return (
            WordPieceVocabulary.from_texts(sources, vocabulary_size=args.vocabulary_size, max_length=args.max_source_length),
            WordPieceVocabulary.from_texts(targets, vocabulary_size=args.vocabulary_size, max_length=args.max_target_length),
        )

    stem = Path(args.pairs).stem
    args.name = args.name or f"translate_{stem}"
    run_dir = args.run_dir or f"runs/translate_{stem}_{args.model}"
    dataset = {"name": stem + (" (reversed)" if args.reverse else ""), "origin": str(Path(args.pairs).resolve())}
    return run(args, splits, make_vocabularies, run_dir=run_dir, dataset=dataset, rules=rules)


def main(argv=None):
    parser = build_parser(__doc__, {"max_source_length": 40, "max_target_length": 48, "batch_size": 128, "epochs": 20})
    parser.add_argument("--pairs", required=True, help="tab-separated file: source<TAB>target[<TAB>…] per line")
    parser.add_argument("--reverse", action="store_true", help="translate the second column into the first")
    parser.add_argument("--limit", type=int, help="read at most this many pairs")
    parser.add_argument("--vocabulary-size", type=int, default=8000, help="word pieces per side, at most")
    return run_seq2seq(translate, parser, argv)


if __name__ == "__main__":
    main()
