"""Re-scoring an exported translator from its SavedModel alone; ``python -m kvision.evaluate g2p``.

    python -m kvision.evaluate g2p --model saved_models/g2p_cmudict/<version>

The SavedModel is loaded with ``tf.saved_model.load`` and called through its
``serving_default`` signature (strings in, strings out) in batches, as a
client of the served model would: no Keras model, checkpoint or training
code. For G2P the test split is rebuilt with the recipe's own function
(``cmudict_splits``: the word-hash split, with the stress setting and
fractions the export's evaluation.json records), scored as the recipe scores
(``sequence_error_rates``: a word is right when its output equals any of its
pronunciations), and compared with the figures evaluation.json stored at
export time.
"""

import argparse
import json
import time
from pathlib import Path

import tensorflow as tf
import tensorflow_text  # noqa: F401  registers the TF Text ops an exported translator's graph uses

from kvision.console import HelpFormatter, prog_name
from kvision.data.text import cmudict_splits, group_references, pairs_fingerprint
from kvision.errors import ExportError, exit_on_error
from kvision.evaluate.seq2seq import sequence_error_rates, translate_all

COMPARED = ("word_error_rate", "token_error_rate")  # the export's metrics re-scored (token error rate: the PER)
TOLERANCE = 0.0005  # largest |difference| of a compared rate that still agrees: 0.05 percentage points


def _describe(specs):
    """``name dtype[shape]`` of each ``TensorSpec`` in ``specs``, for error messages."""
    return ", ".join(f"{name} {spec.dtype.name}{list(spec.shape)}" for name, spec in specs.items()) or "nothing"


def served_translator(path):
    """The ``serving_default`` of the translator SavedModel at ``path``, as a function: string ``[N]`` → its outputs.

    Raises ``ExportError`` naming ``path`` when it is not a SavedModel, does not
    load, or its ``serving_default`` does not map ``inputs`` (string ``[N]``) to
    ``outputs`` (string ``[N]``) and ``scores``.
    """
    path = Path(path)
    if not (path / "saved_model.pb").is_file():
        raise ExportError(
            f"Expected an exported SavedModel directory (EXPORT_DIR/NAME/VERSION, holding saved_model.pb). Received: {path}"
        )
    try:
        loaded = tf.saved_model.load(str(path))
    except (OSError, ValueError, tf.errors.OpError) as err:
        first_line = (getattr(err, "message", None) or str(err)).strip().splitlines()[0]
        raise ExportError(f"Could not load the SavedModel at {path}. Received: {type(err).__name__}: {first_line}") from None
    signature = loaded.signatures.get("serving_default")
    inputs = signature.structured_input_signature[1] if signature is not None else {}
    outputs = signature.structured_outputs if signature is not None else {}
    expected = {"inputs": tf.string}, {"outputs": tf.string, "scores": tf.float32}
    if {k: v.dtype for k, v in inputs.items()} != expected[0] or any(
        key not in outputs or outputs[key].dtype != dtype for key, dtype in expected[1].items()
    ):
        raise ExportError(
            "Expected a translator SavedModel whose serving_default maps inputs (string [N]) to outputs (string [N]) "
            f"and scores (float32 [N]). Received: {path}, whose serving_default "
            + (f"takes {_describe(inputs)} and returns {_describe(outputs)}" if signature is not None else "is missing")
        )

    def translate(texts):
        return loaded.signatures["serving_default"](inputs=texts)  # `loaded` stays alive with this function

    return translate


def rescore(translate, pairs, *, batch_size=256):
    """Word and token error rates of ``translate`` on ``(source, target)`` pairs, as ``evaluate_seq2seq`` scores them.

    Every distinct source is decoded once, in batches of ``batch_size``, and
    scored against all its targets.
    """
    sources, references = group_references(pairs)
    outputs, _ = translate_all(translate, sources, batch_size=batch_size)
    return {"sources": len(sources), "pairs": len(pairs), **sequence_error_rates(outputs, references)}


def rescore_g2p(model_dir, *, stress=None, validation=None, test=None, batch_size=256, tolerance=TOLERANCE):
    """Re-score the G2P SavedModel ``model_dir`` on the recipe's CMUdict test split; the report, as a dict.

    The split's settings (``stress``, ``validation`` and ``test`` fractions)
    are those the export's evaluation.json records unless given, else the
    recipe's defaults. The report holds the re-scored rates, the export's,
    their differences, whether the rebuilt training split is the one the model
    was trained on (the fingerprint evaluation.json records), and ``agree``:
    same split and every compared rate within ``tolerance`` (None when
    evaluation.json has no rates).
    """
    start = time.time()
    model_dir = Path(model_dir)
    translate = served_translator(model_dir)
    evaluation_file = model_dir / "evaluation.json"
    stored = json.loads(evaluation_file.read_text()) if evaluation_file.is_file() else {}
    record = stored.get("dataset") or {}
    recorded = {"stress": record.get("stress"), "validation": record.get("validation_fraction"),
                "test": record.get("test_fraction")}
    given = {"stress": stress, "validation": validation, "test": test}
    settings = {key: recorded[key] if value is None else value for key, value in given.items()}
    splits, dataset = cmudict_splits(**{key: value for key, value in settings.items() if value is not None})
    fingerprint = pairs_fingerprint(splits["train"])
    same_split = fingerprint == record["fingerprint"] if "fingerprint" in record else None
    rescored = rescore(translate, splits["test"], batch_size=batch_size)
    exported = {key: stored["metrics"][key] for key in COMPARED if key in stored.get("metrics", {})}
    difference = {key: rescored[key] - exported[key] for key in exported}
    agree = None
    if exported:
        agree = same_split is not False and all(abs(d) <= tolerance for d in difference.values())
    return {
        "model": str(model_dir),
        "decoding": stored.get("decoding"),
        "data": {**dataset, "test_words": rescored["sources"], "test_pairs": rescored["pairs"],
                 "train_fingerprint": fingerprint, "same_split_as_export": same_split},
        "rescored": {key: rescored[key] for key in (*COMPARED, "exact_match")},
        "export": exported or None,
        "difference": difference,
        "tolerance": tolerance,
        "agree": agree,
        "seconds": round(time.time() - start, 1),
    }


def build_parser():
    parser = argparse.ArgumentParser(
        prog=prog_name("python -m kvision.evaluate g2p"), description=__doc__, formatter_class=HelpFormatter
    )
    parser.add_argument("--model", required=True, metavar="EXPORT_DIR/NAME/VERSION", help="the exported SavedModel")
    split = parser.add_argument_group("test split (default: as the export's evaluation.json records it)")
    split.add_argument("--stress", action=argparse.BooleanOptionalAction, help="keep the lexical stress digits")
    split.add_argument("--validation-fraction", type=float, help="share of words held out for validation")
    split.add_argument("--test-fraction", type=float, help="share of words held out for the test")
    parser.add_argument("--batch-size", type=int, default=256, help="words per request (default: %(default)s)")
    parser.add_argument("--tolerance", type=float, default=TOLERANCE,
                        help="largest difference of a rate (0..1) that agrees with the export's (default: %(default)s)")
    parser.add_argument("--verbose", action="store_true", help="print the full traceback of an error, not only its line")
    return parser


def g2p_command(argv):
    """Re-score an exported G2P model on the CMUdict test split and compare with its evaluation.json.

    Prints the report as JSON; exits with status 1 when the figures disagree
    and with one ``error:`` line on a bad path or model.
    """
    args = build_parser().parse_args(argv)
    report = exit_on_error(
        lambda: rescore_g2p(args.model, stress=args.stress, validation=args.validation_fraction,
                            test=args.test_fraction, batch_size=args.batch_size, tolerance=args.tolerance),
        verbose=args.verbose,
    )
    print(json.dumps(report, indent=2))
    if report["agree"] is False:
        raise SystemExit(f"error: the re-scored figures disagree with {Path(args.model) / 'evaluation.json'} "
                         f"(difference {report['difference']}, same split {report['data']['same_split_as_export']})")
    return report
