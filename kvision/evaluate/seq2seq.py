"""Sequence-to-sequence evaluation: error rates, BLEU, token accuracy, attention heat maps, a report.

A source may have several correct targets (the pronunciation variants of a
word); a hypothesis is scored against the closest one, as in the G2P
literature.
"""

import json
import sys
from pathlib import Path

import keras
import keras_hub
import numpy as np
import tensorflow as tf

from kvision.data.text import START_ID, group_references, text_pipeline
from kvision.evaluate.plots import plot_attention, plot_training_curves, read_history
from kvision.models.decoding import attention_weights, strip_special
from kvision.models.seq2seq import seq2seq_parts
from kvision.train.tensorboard import log_test_metrics


def sequence_error_rates(hypotheses, references):
    """Word error rate and token error rate of whitespace-tokenised ``hypotheses``.

    Args:
        hypotheses: one string per source.
        references: one list of correct strings per source.

    Returns:
        ``{"word_error_rate", "token_error_rate", "exact_match"}``: the share of
        sources whose hypothesis equals none of their references, and the sum
        over sources of the edit distance to the closest reference divided by
        the sum of those references' lengths (for G2P, the phoneme error rate).
    """
    if len(hypotheses) != len(references) or not hypotheses:
        raise ValueError(
            f"Expected one list of references per hypothesis, at least one. "
            f"Received: {len(hypotheses)} hypotheses, {len(references)} reference lists"
        )
    owners = np.repeat(np.arange(len(references)), [len(refs) for refs in references])
    flat_refs = [ref for refs in references for ref in refs]
    hyp = tf.strings.split(tf.constant([hypotheses[i] for i in owners], tf.string))
    ref = tf.strings.split(tf.constant(flat_refs, tf.string))
    distances = tf.edit_distance(hyp.to_sparse(), ref.to_sparse(), normalize=False).numpy()
    ref_lengths = ref.row_lengths().numpy()
    errors = total = wrong = 0
    start = 0
    for refs in references:
        d, lengths = distances[start : start + len(refs)], ref_lengths[start : start + len(refs)]
        best = np.lexsort((lengths, d))[0]  # closest reference, the shorter one on ties
        errors += d[best]
        total += lengths[best]
        wrong += d[best] > 0
        start += len(refs)
    return {
        "word_error_rate": float(wrong / len(references)),
        "token_error_rate": float(errors / max(total, 1)),
        "exact_match": float(1 - wrong / len(references)),
    }


def bleu_scores(hypotheses, references, *, max_order=4):
    """Corpus BLEU-1 … BLEU-``max_order`` in [0, 1]: ``{"bleu_1": …, "bleu_4": …}``.

    BLEU-n is the geometric mean of the 1- to n-gram precisions times the
    brevity penalty (``keras_hub.metrics.Bleu``: sacreBLEU's 13a tokenisation),
    each hypothesis scored against all its references.
    """
    scores = {}
    for order in range(1, max_order + 1):
        metric = keras_hub.metrics.Bleu(max_order=order)
        metric.update_state(tf.ragged.constant(references), tf.constant(hypotheses))
        scores[f"bleu_{order}"] = float(metric.result())
    return scores


def corpus_bleu(hypotheses, references):
    """Corpus BLEU-4 in [0, 100] (see ``bleu_scores``), the scale of the translation literature."""
    return bleu_scores(hypotheses, references)["bleu_4"] * 100


def translate_all(translate, sources, *, batch_size=256):
    """``(outputs, scores)`` of ``sources`` in batches, with a progress bar.

    ``translate`` maps a string tensor ``[N]`` to ``{"outputs": string[N],
    "scores": float32[N]}``: a ``Translator``'s ``translate``, or the
    ``serving_default`` signature of its SavedModel.
    """
    outputs, scores = [], []
    # A live bar on a terminal; in a log file, one line at the end.
    progress = keras.utils.Progbar(len(sources), unit_name="source", verbose=1 if sys.stdout.isatty() else 2)
    for start in range(0, len(sources), batch_size):
        result = translate(tf.constant(sources[start : start + batch_size]))
        outputs += [text.decode("utf-8") for text in result["outputs"].numpy()]
        scores += result["scores"].numpy().tolist()
        progress.add(len(result["scores"]))
    return outputs, scores


def attention_examples(translator, sources):
    """``(weights, source tokens, output tokens)`` of the best beam of each source, for ``plot_attention``."""
    model, source_vocab, target_vocab = translator.model, translator.source_vocab, translator.target_vocab
    ids = translator.source_ids(tf.constant(sources))
    best = translator.search(ids)[0][:, 0]
    outputs = strip_special(best)
    # The decoder reads [START] + its own output; the row for t is where it looked to produce token t.
    weights = attention_weights(model, ids, tf.concat([tf.fill([len(sources), 1], START_ID), best], axis=1)).numpy()
    examples = []
    for row, (source_row, output_row) in enumerate(zip(ids.numpy(), outputs.to_list())):
        source_tokens = [source_vocab.tokens[i] for i in source_row if i != 0]
        output_tokens = [target_vocab.tokens[i] for i in output_row] + ["[END]"]
        examples.append((weights[row, : len(output_tokens), : len(source_tokens)], source_tokens, output_tokens))
    return examples


def evaluate_seq2seq(translator, pairs, out_dir, *, batch_size=256, history_csv=None, log_dir=None, heat_maps=4):
    """Evaluate a ``Translator`` on ``(source, target)`` pairs and write the report under ``out_dir``.

    Measures teacher-forced token accuracy, then decodes every distinct
    source once and scores it against all its targets: word/token error
    rates, exact match and corpus BLEU. Writes ``report.json``,
    ``predictions.tsv`` (source, output, score, references, correct),
    ``attention.png`` for the first ``heat_maps`` sources (RNN models) and
    ``training_curves.png``; with ``log_dir``, the metrics and a few
    predictions also go to TensorBoard. Returns the report dict.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dataset, _ = text_pipeline(pairs, translator.source_vocab, translator.target_vocab, batch_size=batch_size, training=False)
    teacher_forced = translator.model.evaluate(dataset, verbose=0, return_dict=True)
    sources, references = group_references(pairs)
    outputs, scores = translate_all(translator.translate, sources, batch_size=batch_size)
    report = {
        "pairs": len(pairs),
        "sources": len(sources),
        "beam_width": translator.beam_width,
        "length_penalty": translator.alpha,
        "token_accuracy": teacher_forced["token_accuracy"],
        "loss": teacher_forced["loss"],
        **sequence_error_rates(outputs, references),
        "bleu": corpus_bleu(outputs, references),
    }
    with open(out_dir / "predictions.tsv", "w", encoding="utf-8") as f:
        f.write("source\toutput\tscore\treferences\tcorrect\n")
        for source, output, score, refs in zip(sources, outputs, scores, references):
            f.write(f"{source}\t{output}\t{score:.4f}\t{' | '.join(refs)}\t{int(output in refs)}\n")
    files = {"predictions": out_dir / "predictions.tsv"}
    if heat_maps and seq2seq_parts(translator.model).incremental:
        files["attention"] = plot_attention(attention_examples(translator, sources[:heat_maps]), out_dir / "attention.png")
    if history_csv is not None and Path(history_csv).exists():
        files["training_curves"] = plot_training_curves(read_history(history_csv), out_dir / "training_curves.png")
    if log_dir is not None:
        _log_to_tensorboard(report, sources, outputs, references, files.get("attention"), log_dir)
    report["files"] = {key: str(path) for key, path in files.items()}
    (out_dir / "report.json").write_text(json.dumps(report, indent=2))
    return report


def _log_to_tensorboard(report, sources, outputs, references, attention_png, log_dir, examples=20):
    metrics = {key: report[key] for key in ("token_accuracy", "word_error_rate", "token_error_rate", "exact_match", "bleu")}
    rows = [f"| {s} | {o} | {' / '.join(r)} |" for s, o, r in list(zip(sources, outputs, references))[:examples]]
    log_test_metrics(log_dir, metrics,
                     texts={"test/predictions": "\n".join(["| source | output | references |", "|---|---|---|", *rows])},
                     images={"attention": attention_png} if attention_png is not None else None)
