"""Captioning evaluation: BLEU-1..4, exact match, item names of composed scenes, attention maps, a report.

Every test image is captioned once and scored against all its reference
captions.
"""

import json
import sys
from collections import Counter
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from kvision.data.captions import caption_items, caption_pipeline
from kvision.data.text import START_ID
from kvision.evaluate.plots import plot_caption_attention, plot_training_curves, read_history
from kvision.evaluate.seq2seq import bleu_scores
from kvision.models.decoding import attention_weights, strip_special
from kvision.train.tensorboard import log_test_metrics


def caption_all(captioner, images, *, batch_size=256):
    """``(captions, scores)`` of ``captioner`` over uint8 ``images`` in batches, with a progress bar."""
    captions, scores = [], []
    progress = keras.utils.Progbar(len(images), unit_name="image", verbose=1 if sys.stdout.isatty() else 2)
    for start in range(0, len(images), batch_size):
        texts, batch_scores = captioner.caption_images(tf.constant(images[start : start + batch_size], tf.float32))
        captions += [text.decode("utf-8") for text in texts.numpy()]
        scores += batch_scores.numpy().tolist()
        progress.add(len(texts))
    return captions, scores


def item_match(captions, references):
    """How well the item names of scene ``captions`` match the items placed (named by each first reference).

    Returns ``{"item_match", "scene_item_match"}``: the share of placed items
    named in the caption (as a multiset: two bags placed need two bags
    named), and the share of scenes whose caption names exactly the placed items.
    """
    matched = placed = exact = 0
    for caption, refs in zip(captions, references, strict=True):
        named, truth = Counter(caption_items(caption)), Counter(caption_items(refs[0]))
        matched += sum((named & truth).values())
        placed += sum(truth.values())
        exact += named == truth
    return {"item_match": matched / max(placed, 1), "scene_item_match": exact / max(len(captions), 1)}


def comparable(references, vocab):
    """``references`` as ``vocab`` can write them: lower-cased when it lower-cases (COCO's are not)."""
    return [[ref.lower() for ref in refs] for refs in references] if vocab.lowercase else references


def attention_examples(captioner, images):
    """``(image, words, weights [T, h, w])`` of the best caption of each image, for ``plot_caption_attention``."""
    model, vocab = captioner.model, captioner.target_vocab
    _, height, width, _ = model.get_layer("encoder").output.shape
    images = tf.constant(images, tf.float32)
    best = captioner.search(images)[0][:, 0]
    # The decoder reads [START] + its own output; step t is where it looked to produce word t.
    weights = attention_weights(model, images, tf.concat([tf.fill([len(images), 1], START_ID), best], axis=1)).numpy()
    examples = []
    for image, row, ids in zip(images.numpy(), weights, strip_special(best).to_list()):
        words = [vocab.tokens[i] for i in ids] + ["[END]"]
        examples.append((image, words, row[: len(words)].reshape(len(words), height, width)))
    return examples


def evaluate_captioner(captioner, caption_set, out_dir, *, scenes=False, batch_size=256, history_csv=None, log_dir=None,
                       attention_maps=4):
    """Evaluate a ``Captioner`` on a ``CaptionSet`` and write the report under ``out_dir``.

    Measures teacher-forced token accuracy and loss, then captions every
    image once: BLEU-1..4 against all its references, exact match (the caption
    equals one of them) and, for composed ``scenes``, ``item_match``; the
    references are lower-cased first when the vocabulary lower-cases. Writes
    ``report.json``, ``predictions.tsv`` (output, score, references, correct),
    ``attention.png`` for the first ``attention_maps`` images and
    ``training_curves.png``; with ``log_dir``, metrics, examples and the
    attention maps also go to TensorBoard. Returns the report dict.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dataset, _ = caption_pipeline(caption_set, captioner.target_vocab, batch_size=batch_size, training=False)
    teacher_forced = captioner.model.evaluate(dataset, verbose=0, return_dict=True)
    images, references = caption_set.references()
    references = comparable(references, captioner.target_vocab)
    captions, scores = caption_all(captioner, images, batch_size=batch_size)
    correct = [caption in refs for caption, refs in zip(captions, references)]
    report = {
        "images": len(images),
        "captions": len(caption_set.pairs),
        "beam_width": captioner.beam_width,
        "length_penalty": captioner.alpha,
        "token_accuracy": teacher_forced["token_accuracy"],
        "loss": teacher_forced["loss"],
        **bleu_scores(captions, references),
        "exact_match": float(np.mean(correct)),
        **(item_match(captions, references) if scenes else {}),
    }
    with open(out_dir / "predictions.tsv", "w", encoding="utf-8") as f:
        f.write("index\toutput\tscore\treferences\tcorrect\n")
        for i, (caption, score, refs, ok) in enumerate(zip(captions, scores, references, correct)):
            f.write(f"{i}\t{caption}\t{score:.4f}\t{' | '.join(refs)}\t{int(ok)}\n")
    files = {"predictions": out_dir / "predictions.tsv"}
    if attention_maps:
        files["attention"] = plot_caption_attention(attention_examples(captioner, images[:attention_maps]),
                                                    out_dir / "attention.png")
    if history_csv is not None and Path(history_csv).exists():
        files["training_curves"] = plot_training_curves(read_history(history_csv), out_dir / "training_curves.png")
    if log_dir is not None:
        _log_to_tensorboard(report, captions, references, files.get("attention"), log_dir)
    report["files"] = {key: str(path) for key, path in files.items()}
    (out_dir / "report.json").write_text(json.dumps(report, indent=2))
    return report


def _log_to_tensorboard(report, captions, references, attention_png, log_dir, examples=20):
    metrics = {key: report[key] for key in ("token_accuracy", "bleu_1", "bleu_4", "exact_match", "item_match") if key in report}
    rows = [f"| {i} | {c} | {' / '.join(r)} |" for i, (c, r) in enumerate(list(zip(captions, references))[:examples])]
    log_test_metrics(log_dir, metrics,
                     texts={"test/captions": "\n".join(["| image | caption | references |", "|---|---|---|", *rows])},
                     images={"attention": attention_png} if attention_png is not None else None)
