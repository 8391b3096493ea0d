"""Sequence to sequence, end to end: pairs → vocabularies → model → training → evaluation → SavedModel.

The shared body of ``g2p_cmudict.py`` and ``translate.py``; those scripts
choose the pairs, the vocabularies and the metrics.

Outputs: ``<run-dir>/`` (config.json, vocabularies.json, TensorBoard logs,
checkpoints, history.csv, evaluation/report.json, predictions.tsv and the
attention heat maps) and ``<export-dir>/<name>/<version>/`` (a verified
SavedModel whose ``serving_default`` maps strings to strings), or
``<export-dir>/.rejected/<name>/<version>/`` when a check fails.
"""

import argparse
import time
from pathlib import Path

from kvision.data.text import group_references, load_vocabularies, pairs_fingerprint, save_vocabularies
from kvision.evaluate.seq2seq import evaluate_seq2seq
from kvision.models import build, get_builder, list_models
from kvision.models.decoding import Translator
from kvision.recipes.common import (add_export_arguments, add_run_arguments, add_speed_arguments, announce_model,
                                    check_export_arguments, export_for_translator, finish, open_recipe_run,
                                    recipe_parser, run_recipe, tensorboard_options,
                                    training_command)
from kvision.train import fit_seq2seq, get_strategy, is_chief, run_paths, worker_dir
from kvision.train.seq2seq import check_teacher_forcing

PARITY_SOURCES = 64  # test sources the exported SavedModel must decode exactly as Keras did
DECODING = ("beam_width", "length_penalty")  # used after training only: a finished run decodes and exports again


def build_parser(description, defaults):
    """The recipe's flags; ``defaults`` are the calling recipe's."""
    parser = recipe_parser(description)
    data = parser.add_argument_group("data")
    data.add_argument("--validation-fraction", type=float, help="share of sources held out for validation")
    data.add_argument("--test-fraction", type=float, help="share of sources held out for the final test")
    data.add_argument("--max-source-length", type=int, help="tokens kept of a source (longer ones are cut)")
    data.add_argument("--max-target-length", type=int, help="most tokens decoded, [END] included")

    model = parser.add_argument_group("model")
    model.add_argument("--model", help=f"one of: {', '.join(list_models('seq2seq'))}")
    model.add_argument("--units", type=int, help="RNN state size / Transformer width (d_model)")
    model.add_argument("--layers", type=int, help="encoder layers, and decoder layers unless --decoder-layers")
    model.add_argument("--decoder-layers", type=int, help="decoder layers; None: as many as --layers")
    model.add_argument("--bidirectional", action=argparse.BooleanOptionalAction,
                       help="RNN models: every encoder layer reads the source both ways (units / 2 each way)")
    model.add_argument("--heads", type=int, help="Transformer: attention heads (--units a multiple of it)")
    model.add_argument("--ff-dim", type=int, help="Transformer: feed-forward width of every block")
    model.add_argument("--dropout", type=float, help="RNN: on embeddings and between layers; Transformer: in every block")

    optim = parser.add_argument_group("optimisation")
    optim.add_argument("--epochs", type=int, help="passes over the training pairs")
    optim.add_argument("--batch-size", type=int, help="global batch size")
    optim.add_argument("--lr", type=float, help="peak learning rate of Adam (warm-up, then cosine decay)")
    optim.add_argument("--label-smoothing", type=float,
                       help="epsilon of the token cross-entropy, spread over the tokens a decoder can emit (0: none)")
    optim.add_argument("--average-last", type=int, metavar="K",
                       help="evaluate and export the mean of the last K epochs' weights (0: the best epoch by "
                            "validation token accuracy); keeps K epochs' weights in <run-dir>/checkpoints/epochs/")
    add_speed_arguments(parser)

    decode = parser.add_argument_group("decoding")
    decode.add_argument("--beam-width", type=int, help="1: greedy")
    decode.add_argument("--length-penalty", type=float, help="GNMT length-penalty exponent alpha (0: none)")

    run = parser.add_argument_group("run and export")
    run.add_argument("--seed", type=int, help="seeds weights and shuffling (the split has its own fixed seed)")
    run.add_argument("--run-dir", help="logs, checkpoints, report; a killed run resumes from here")
    run.add_argument("--name", help="served model name")
    add_run_arguments(run)
    export = add_export_arguments(parser, classifier=False, tflite=False)
    export.add_argument("--bless-max-wer", type=float, help="bless only if the test word error rate is at most this (0..1)")
    parser.set_defaults(
        **{
            "validation_fraction": 0.05,
            "test_fraction": 0.1,
            "max_source_length": 32,
            "max_target_length": 32,
            "model": "attention_rnn",
            "units": 256,
            "layers": 2,
            "decoder_layers": None,
            "bidirectional": True,
            "heads": 4,
            "ff_dim": 1024,
            "dropout": 0.2,
            "epochs": 30,
            "batch_size": 256,
            "lr": 2e-3,
            "label_smoothing": 0.0,
            "average_last": 0,
            "beam_width": 5,
            "length_penalty": 0.0,
            "seed": 0,
            **defaults,
        }
    )
    return parser


def model_options(args):
    """Builder keyword arguments from the model flags: the Transformer's, or the RNN models'."""
    common = dict(num_layers=args.layers, decoder_layers=args.decoder_layers, dropout=args.dropout)
    if args.model == "transformer":
        return dict(
            common,
            dim=args.units,
            num_heads=args.heads,
            intermediate_dim=args.ff_dim,
            max_source_length=args.max_source_length,
            max_target_length=args.max_target_length,
        )
    return dict(common, units=args.units, bidirectional=args.bidirectional)


def vocabularies(run_dir, make):
    """The run's vocabularies: read back when resuming, else ``make()`` and save them."""
    path = Path(run_dir) / "vocabularies.json"
    if path.exists():
        return load_vocabularies(path)
    source_vocab, target_vocab = make()
    save_vocabularies(path, source_vocab, target_vocab)
    return source_vocab, target_vocab


def run_seq2seq(run, parser, argv=None):
    """``run_recipe`` for a recipe built on this one: decoding flags may change when a run directory is resumed."""
    return run_recipe(run, parser, argv, may_change=DECODING)


def run(args, splits, make_vocabularies, *, run_dir, dataset, rules):
    """Train, evaluate on the test split, export; returns the summary dict it prints.

    ``make_vocabularies()`` returns ``(source, target)`` vocabularies learned
    from the training split; ``dataset`` names the data (``name``, ``origin``);
    ``rules`` come from ``run_seq2seq``.
    """
    get_builder(args.model, "seq2seq")  # fail on an unknown name or a bad training or export flag before any work
    check_teacher_forcing(epochs=args.epochs, label_smoothing=args.label_smoothing, average_last=args.average_last)
    check_export_arguments(args)
    strategy = get_strategy()  # first: a multi-worker strategy must exist before TensorFlow runs any op
    run_dir = Path(run_dir)
    open_recipe_run(run_dir, args, rules, strategy=strategy)
    source_vocab, target_vocab = vocabularies(run_dir, make_vocabularies)
    print(
        f"data: {len(splits['train'])} train, {len(splits['validation'])} validation, {len(splits['test'])} test pairs; "
        f"vocabularies: {source_vocab.size} source ({source_vocab.kind}), {target_vocab.size} target ({target_vocab.kind})"
    )
    def model_fn():
        return build(args.model, source_vocab.size, target_vocab.size, **model_options(args))

    announce_model(args.model, model_fn())
    start = time.time()
    result = fit_seq2seq(
        model_fn,
        splits["train"],
        splits["validation"],
        source_vocab,
        target_vocab,
        run_dir=run_dir,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        label_smoothing=args.label_smoothing,
        average_last=args.average_last,
        seed=args.seed,
        mixed_precision=args.mixed_precision,
        xla=args.xla,
        strategy=strategy,
        **tensorboard_options(args),
    )
    train_seconds = time.time() - start

    translator = Translator(
        result.model, source_vocab, target_vocab, beam_width=args.beam_width, alpha=args.length_penalty
    )
    start = time.time()
    with worker_dir(run_dir) as out_dir:  # every worker evaluates (collective evaluate); the chief's files are kept
        paths = run_paths(out_dir)
        report = evaluate_seq2seq(
            translator, splits["test"], out_dir / "evaluation", history_csv=paths["history"], log_dir=paths["logs"]
        )
    evaluate_seconds = time.time() - start
    export = None
    if is_chief():
        sources, _ = group_references(splits["test"])
        export = export_for_translator(
            translator, args, name=args.name, sources=sources[:PARITY_SOURCES], report=report,
            training_command=training_command(),
            dataset={**dataset, "fingerprint": pairs_fingerprint(splits["train"])},
        )
    summary = {
        "model": args.model,
        "parameters": result.model.count_params(),
        "averaged_epochs": list(result.averaged_epochs),
        "test_word_error_rate": report["word_error_rate"],
        "test_token_error_rate": report["token_error_rate"],
        "test_bleu": report["bleu"],
        "test_token_accuracy": report["token_accuracy"],
        "train_seconds": round(train_seconds, 1),
        "evaluate_seconds": round(evaluate_seconds, 1),
        "run_dir": str(run_dir),
        "report": str(run_dir / "evaluation" / "report.json"),
    }
    return finish(summary, export, run_dir=run_dir)
