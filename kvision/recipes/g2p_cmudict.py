"""Grapheme-to-phoneme conversion on the CMU Pronouncing Dictionary.

    kvision train g2p_cmudict                        # attention LSTM, documented result
    kvision train g2p_cmudict --model transformer --lr 1e-3

Candidates for better figures, each a flag (the defaults are today's):

    --model transformer --layers 2 --units 256 --heads 4 --ff-dim 256   # CMUSphinx g2p-seq2seq's 2 × 256
    --model transformer --layers 3 --units 256 --heads 4 --ff-dim 256   # … 3 × 256
    --decoder-layers 3            # RNN: a decoder deeper than the (bidirectional; --no-bidirectional) encoder
    --label-smoothing 0.1         # spread over the tokens a decoder can emit
    --average-last 5              # evaluate and export the mean of the last 5 epochs' weights
    --beam-width 4 --length-penalty 0.6   # g2p-seq2seq's decoding: rank by log P / ((5 + length) / 6)^0.6

Measured (README's Results): the default attention LSTM, 30 epochs: test WER
27.94%, PER 6.63%; the 2 × 256 Transformer with label smoothing 0.1, the mean
of the last 5 epochs, beam 4 and length penalty 0.6, 45 epochs: 30.57%,
7.45% (it underfits at dropout 0.2: training and validation token accuracy
end level).

Words are split into train/validation/test by a hash of the word, so all
pronunciations of a word stay in one split. Stress digits are dropped (the
39-phoneme setting of the G2P literature) unless ``--stress``. Reported on
the test split, with beam search: word error rate (words whose output
matches none of their reference pronunciations) and phoneme error rate
(edit distance to the closest reference / its length). The export's figures
can be checked from the SavedModel alone with ``python -m kvision.evaluate
g2p --model saved_models/g2p_cmudict/<version>``. Results are in the README.
"""


from kvision.data.text import CharacterVocabulary, WordPieceVocabulary, cmudict_splits
from kvision.recipes.seq2seq import build_parser, run, run_seq2seq


def g2p(args, *, rules):
    """Split CMUdict, then train, evaluate and export (``seq2seq.run``)."""
    splits, dataset = cmudict_splits(stress=args.stress, validation=args.validation_fraction, test=args.test_fraction)

    def make_vocabularies():
        words, phones = zip(*splits["train"])
        return (
            CharacterVocabulary.from_texts(words, max_length=args.max_source_length),
            WordPieceVocabulary.from_symbols(phones, max_length=args.max_target_length),
        )

    run_dir = args.run_dir or f"runs/g2p_cmudict_{args.model}"
    return run(args, splits, make_vocabularies, run_dir=run_dir, dataset=dataset, rules=rules)


def main(argv=None):
    parser = build_parser(__doc__, {"name": "g2p_cmudict"})
    parser.add_argument("--stress", action="store_true", help="keep the lexical stress digits (AH0, AH1 …)")
    return run_seq2seq(g2p, parser, argv)


if __name__ == "__main__":
    main()
