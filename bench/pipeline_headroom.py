"""Input-pipeline headroom: ``python -m bench.pipeline_headroom``.

Examples/s that kvision's ``tf.data`` pipelines deliver alone, with training
augmentation, against examples/s the training step consumes, in one run:

* images: ``make_pipeline`` (random crop 4 px, flip, one-hot), batch 128 of
  32×32×3, against ResNet-20 training with ``fit_classifier``;
* JPEGs: ``stream_pipeline`` on an image folder of 1 000 generated
  ImageNet-like JPEGs (``bench.harness.write_photo_folder``; random-resized
  crop to 224×224, flip), batch 32, against training a ResNet-50 V2 (Keras
  Applications, random weights, a new 10-class head) at 224×224 with
  ``fit_classifier`` (``--resnet50-steps`` per epoch, 5: a step takes seconds on a CPU);
* text: ``text_pipeline`` (shuffle, teacher forcing, length buckets) on real
  CMUdict pairs, batch 256, against the attention LSTM of the G2P recipe.

Headroom = pipeline rate ÷ training rate; the goal is ≥ 5×, so training never
waits for input. The pipeline alone has both cores; during training it
shares them with the step, so the headroom is an upper bound of what it has
left then.
"""

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.harness import (
    classifier_step_times,
    keras_step_timer,
    make_parser,
    report,
    synthetic_images,
    write_photo_folder,
)

PHOTOS = 1000  # JPEGs of the ResNet-50 row's folder; the stream repeats them


def pipeline_rate(dataset, batches):
    """Examples/s over ``batches`` batches of ``dataset`` after 5 warm-up batches."""
    iterator = iter(dataset.repeat())
    for _ in range(5):
        next(iterator)
    count, start = 0, time.perf_counter()
    for _ in range(batches):
        count += int(next(iterator)[1].shape[0])
    return count / (time.perf_counter() - start)


def image_rates(args):
    from kvision.data import make_pipeline

    dataset = make_pipeline(*synthetic_images(args.image_batch * 40), batch_size=args.image_batch, num_classes=10,
                            training=True, crop_padding=4, flip=True, seed=0)
    times = classifier_step_times("resnet20", batch_size=args.image_batch, steps=args.steps, crop_padding=4, flip=True)
    return pipeline_rate(dataset, args.batches), args.image_batch / statistics.median(times)


def resnet50_rates(args):
    from kvision.data.folder import open_folder
    from kvision.data.stream import stream_pipeline
    from kvision.train.finetune import load_backbone, with_new_head

    shape = (224, 224, 3)
    with tempfile.TemporaryDirectory() as folder:
        write_photo_folder(Path(folder), PHOTOS)
        dataset = stream_pipeline(open_folder(folder, validation=0).splits["train"], image_shape=shape,
                                  batch_size=args.resnet50_batch, training=True, crop="inception", flip=True, seed=0)
        rate = pipeline_rate(dataset, args.batches)
    times = classifier_step_times(lambda: with_new_head(load_backbone("ResNet50V2", shape), 10), image_shape=shape,
                                  batch_size=args.resnet50_batch, steps=args.resnet50_steps, crop_padding=0, flip=True)
    return rate, args.resnet50_batch / statistics.median(times)


def text_rates(args):
    from kvision.data.text import (
        CharacterVocabulary,
        WordPieceVocabulary,
        cmudict_pairs,
        split_by_source,
        text_pipeline,
    )
    from kvision.models import build
    from kvision.train import fit_seq2seq

    train = split_by_source(cmudict_pairs())["train"]
    words, phones = zip(*train)
    source, target = CharacterVocabulary.from_texts(words), WordPieceVocabulary.from_symbols(phones)
    dataset, _ = text_pipeline(train, source, target, batch_size=args.text_batch, training=True, seed=0)
    rate = pipeline_rate(dataset, args.batches)
    subset = train[: args.text_batch * args.steps]
    timer = keras_step_timer()
    with tempfile.TemporaryDirectory() as run_dir:
        fit_seq2seq(lambda: build("attention_rnn", source.size, target.size), subset, subset[: args.text_batch],
                    source, target, run_dir=run_dir, epochs=2, batch_size=args.text_batch, seed=0,
                    callbacks=[timer], verbose=0)
    # Mean examples per step: buckets leave some batches short.
    return rate, len(subset) / (len(timer.times) + 1) / statistics.median(timer.times)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = make_parser("pipeline_headroom", __doc__)
    parser.add_argument("--image-batch", type=int, default=128, help="(default: %(default)s)")
    parser.add_argument("--text-batch", type=int, default=256, help="(default: %(default)s)")
    parser.add_argument("--resnet50-batch", type=int, default=32, help="(default: %(default)s)")
    parser.add_argument("--resnet50-steps", type=int, default=5,
                        help="ResNet-50 training steps per epoch; epoch 2 is timed (default: %(default)s)")
    parser.add_argument("--batches", type=int, default=200, help="pipeline batches timed (default: %(default)s)")
    args = parser.parse_args(argv)
    started = time.time()
    rows = []
    for name, rates in (("images (ResNet-20)", image_rates), ("JPEGs 224×224 (ResNet-50 V2)", resnet50_rates),
                        ("text (G2P attention LSTM)", text_rates)):
        pipeline, training = rates(args)
        rows.append({"data": name, "pipeline_per_s": round(pipeline), "training_per_s": round(training),
                     "headroom": f"{pipeline / training:.1f}x"})
    title = (f"tf.data pipelines alone vs training, batches {args.image_batch} (images), {args.resnet50_batch} (JPEGs) "
             f"and {args.text_batch} (text), {os.cpu_count()} CPU cores")
    report("pipeline_headroom", argv, started, title,
           [("data", "data"), ("pipeline_per_s", "pipeline examples/s"), ("training_per_s", "training examples/s"),
            ("headroom", "headroom")], rows)


if __name__ == "__main__":
    sys.exit(main())
