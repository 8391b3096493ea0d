"""Training input alone, kvision's streamed pipeline against Keras' and PyTorch's: ``python -m bench.input_throughput``.

A generated folder of ImageNet-like JPEGs (``--images`` training images in
10 class folders, sides ±20 % around ``--image-size``, ≈ 100 kB each at
500×375: ``bench.harness.write_photo_folder``) and the same JPEGs in 8
TFRecord shards (``kvision.data.convert``) are written once, before any
timing. Each contender reads them for training, random-resized crop to
224×224 and horizontal flip, in batches of 64, in a fresh process, the four
interleaved over ``--rounds``, on the same cores; the files are in the page
cache for all of them. Each gives batches as its model input would take them:

* ``kvision folder``: ``open_folder`` + ``stream_pipeline(training=True,
  crop="inception", flip=True, seed=0)``: the crop window (8–100 % of the
  area, aspect 3/4–4/3) is drawn from the JPEG's header, only the window is
  decoded (``decode_and_crop_jpeg``), resized to 224×224 (bilinear,
  antialiased from a 2× downscale: ``resize_window``) and flipped, per
  example; float32 ``[64, 224, 224, 3]`` in 0..255, int64 labels.
* ``kvision TFRecord``: the same from the shards (``open_tfrecords``).
* ``Keras``: ``keras.utils.image_dataset_from_directory(image_size=(224, 224),
  batch_size=64, shuffle=True)`` (each JPEG decoded whole and resized whole,
  bilinear), then, as Keras' guides write it, ``.map(augment,
  num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)`` with ``augment`` =
  ``RandomTranslation(0.2, 0.2)``, ``RandomZoom((-0.72, 0))``,
  ``RandomFlip("horizontal")``: Keras 3 has no random-resized crop; per image
  this shows a window of 28–100 % of each side (8–100 % of the area, the
  aspect of the squashed image) whose centre moves by up to 20 %, resampled
  to 224×224. float32 ``[64, 224, 224, 3]`` in 0..255, int32 labels.
* ``PyTorch``: torchvision ``ImageFolder`` (PIL decodes each JPEG whole) with
  ``RandomResizedCrop(224)``, ``RandomHorizontalFlip()``, ``ToTensor()``,
  ``DataLoader(batch_size=64, num_workers=2, persistent_workers=True,
  pin_memory=False)`` drawing from a ``RandomSampler`` of as many samples
  as are read (shuffled, and one long epoch, as the others' ``repeat``: no
  epoch-boundary stall). Each worker runs one torch thread (DataLoader's
  default); the main process, which only receives batches, one
  (``torch.set_num_threads(1)``). float32 ``[64, 3, 224, 224]`` in 0..1, int64 labels.

A process reads ``--warmup`` batches, then times ``--batches``: its rate
is the images read over the time taken (loaders deliver in bursts, so not a
median batch time). Reported: the median rate over the rounds, their
range, each rate relative to ``kvision folder`` and to the faster of Keras
and PyTorch, and the issue's bar: each kvision row ≥ 1.2× the faster of the two.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.harness import PHOTO_SIZE, convert_to_tfrecords, interleave, make_parser, report, write_photo_folder

BATCH = 64
CROP = 224
BAR = 1.2
# Each contender and what one of its batches is.
SETUPS = {
    "kvision folder": "float32 64×224×224×3 in 0..255",
    "kvision TFRecord": "float32 64×224×224×3 in 0..255",
    "Keras": "float32 64×224×224×3 in 0..255",
    "PyTorch": "float32 64×3×224×224 in 0..1",
}
KVISION = ("kvision folder", "kvision TFRecord")
BASELINES = ("Keras", "PyTorch")


def kvision_batches(data, source):
    """kvision's streamed training pipeline on the folder or the TFRecord shards under ``data``, repeated."""
    from kvision.data.folder import open_folder
    from kvision.data.stream import stream_pipeline
    from kvision.data.tfrecord import open_tfrecords

    dataset = open_tfrecords(data / "tfrecord") if source == "tfrecord" else open_folder(data / "folder", validation=0)
    return iter(stream_pipeline(dataset.splits["train"], image_shape=(CROP, CROP, 3), batch_size=BATCH, training=True,
                                crop="inception", flip=True, seed=0).repeat())


def keras_batches(data):
    """``image_dataset_from_directory`` with Keras' augmentation layers mapped over its batches, repeated."""
    import keras
    import tensorflow as tf

    augment = keras.Sequential([keras.layers.RandomTranslation(0.2, 0.2), keras.layers.RandomZoom((-0.72, 0.0)),
                                keras.layers.RandomFlip("horizontal")])
    dataset = keras.utils.image_dataset_from_directory(data / "folder" / "train", image_size=(CROP, CROP),
                                                       batch_size=BATCH, shuffle=True, seed=0, verbose=False)
    dataset = dataset.repeat().map(lambda images, labels: (augment(images, training=True), labels),
                                   num_parallel_calls=tf.data.AUTOTUNE)
    return iter(dataset.prefetch(tf.data.AUTOTUNE))


def torch_batches(data, images):
    """torchvision's ``ImageFolder`` and ImageNet training transforms in a 2-worker ``DataLoader``, ``images`` long."""
    import torch
    from torch.utils.data import DataLoader, RandomSampler
    from torchvision import datasets, transforms

    torch.set_num_threads(1)
    folder = datasets.ImageFolder(data / "folder" / "train", transforms.Compose(
        [transforms.RandomResizedCrop(CROP), transforms.RandomHorizontalFlip(), transforms.ToTensor()]
    ))
    return iter(DataLoader(folder, batch_size=BATCH, sampler=RandomSampler(folder, num_samples=images), num_workers=2,
                           persistent_workers=True, pin_memory=False))


def measure(args):
    """Time ``args.batches`` batches of ``args.setup`` after ``args.warmup``; writes ``[seconds per 64 images]``."""
    data = Path(args.data)
    if args.setup == "PyTorch":
        batches = torch_batches(data, BATCH * (args.warmup + args.batches))
    elif args.setup == "Keras":
        batches = keras_batches(data)
    else:
        batches = kvision_batches(data, "tfrecord" if args.setup == "kvision TFRecord" else "folder")
    for _ in range(args.warmup):
        next(batches)
    images, start = 0, time.perf_counter()
    for _ in range(args.batches):
        images += len(next(batches)[1])  # a Keras epoch ends in a short batch
    Path(args.out).write_text(json.dumps([BATCH * (time.perf_counter() - start) / images]))


def rows_and_bar(times):
    """The table's rows from ``{set-up: [seconds per 64 images, one per round]}``, the faster baseline, the bar met.

    A row's rate is the median over rounds; the bar is met when every
    kvision row's is at least ``BAR`` times the faster baseline's.
    """
    rates = {name: [BATCH / seconds for seconds in times[name]] for name in SETUPS}
    median = {name: statistics.median(rates[name]) for name in SETUPS}
    baseline = max(BASELINES, key=median.get)
    rows = [{"setup": name, "batch": SETUPS[name], "images_per_s": round(median[name]),
             "range": f"{min(rates[name]):.0f}–{max(rates[name]):.0f}",
             "vs_kvision": f"{median[name] / median['kvision folder']:.2f}x",
             "vs_baseline": f"{median[name] / median[baseline]:.2f}x"} for name in SETUPS]
    return rows, baseline, all(median[name] >= BAR * median[baseline] for name in KVISION)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = make_parser("input_throughput", __doc__, training=False, interleaved=True, setups=SETUPS)
    parser.add_argument("--images", type=int, default=2000, help="training JPEGs generated (default: %(default)s)")
    parser.add_argument("--image-size", type=int, nargs=2, default=PHOTO_SIZE, metavar=("HEIGHT", "WIDTH"),
                        help="their typical size; each side is drawn from ±20%% of it (default: 375 500)")
    parser.add_argument("--batches", type=int, default=100, help="batches timed per measurement (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=10, help="batches read before timing (default: %(default)s)")
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.setup:
        return measure(args)
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        write_photo_folder(Path(tmp) / "folder", args.images, tuple(args.image_size))
        convert_to_tfrecords(Path(tmp) / "folder", Path(tmp) / "tfrecord")
        flags = ["--data", tmp, "--batches", str(args.batches), "--warmup", str(args.warmup)]
        times = interleave({name: lambda out, name=name: [sys.executable, "-m", "bench.input_throughput", "--setup", name,
                                                          *flags, "--out", str(out)] for name in SETUPS}, args.rounds)
    rows, baseline, passed = rows_and_bar(times)
    title = (f"Training input alone: {args.images} JPEGs around {args.image_size[1]}×{args.image_size[0]}, random-resized "
             f"crop to {CROP}×{CROP} + flip, batch {BATCH}, images/s (median of {args.rounds} rounds of {args.batches} "
             f"batches), {os.cpu_count()} CPU cores; bar: each kvision row ≥ {BAR}× the faster baseline ({baseline}): "
             f"{'PASS' if passed else 'FAIL'}")
    report("input_throughput", argv, started, title,
           [("setup", "set-up"), ("batch", "batch"), ("images_per_s", "images/s"), ("range", "rounds' range"),
            ("vs_kvision", "vs kvision folder"), ("vs_baseline", f"vs {baseline}")], rows,
           bar={"ratio": BAR, "baseline": baseline, "passed": passed})


if __name__ == "__main__":
    sys.exit(main())
