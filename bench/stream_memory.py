"""Peak memory of a training epoch against the dataset's size: ``python -m bench.stream_memory``.

Generated JPEG folders of 2 000 and 8 000 images of 128×128×3
(``train/<class>/``, ``test/<class>/``, 10 classes) are trained on for one
epoch of a small CNN (batch 64) from three sources, each in a fresh process:

* ``folder``: the streamed image folder (``open_dataset("folder", …)``);
* ``tfrecord``: the same images converted with ``python -m kvision.data.convert``;
* ``in memory``: the folder read into arrays (``load_dataset("image_folder", …)``).

Reported: the process's peak resident memory (``ru_maxrss``) and its growth
from 2 000 to 8 000 images. The goal: a streamed source grows by < 100 MB,
the in-memory one by the images it holds (6 000 × 49 kB = 295 MB, plus copies).
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from bench.harness import convert_to_tfrecords, make_parser, report, run_measurement, write_image_folder

SIZES = (2000, 8000)
SOURCES = ("folder", "tfrecord", "in memory")
IMAGE = 128
CLASSES = 10


def small_cnn():
    import keras

    inputs = keras.Input((IMAGE, IMAGE, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(8, 5, strides=4, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(CLASSES)(x))


def measure(args):
    """One epoch from ``args.setup`` on ``args.data``; writes ``{"peak_rss_mb": …}`` to ``args.out``."""
    import resource

    from kvision.data import load_dataset, open_dataset
    from kvision.train import fit_classifier

    if args.setup == "in memory":
        train = load_dataset("image_folder", args.data).train
    else:
        train = open_dataset(args.setup, args.data, validation=0).splits["train"]
    with tempfile.TemporaryDirectory() as run_dir:
        fit_classifier(small_cnn, train, run_dir=run_dir, epochs=1, batch_size=64, crop_padding=0, seed=0, verbose=0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Path(args.out).write_text(json.dumps({"peak_rss_mb": round(peak, 1)}))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = make_parser("stream_memory", __doc__, training=False, setups=SOURCES)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.setup:
        return measure(args)
    started = time.time()
    peaks = {}
    with tempfile.TemporaryDirectory() as tmp:
        for count in SIZES:
            folder, shards = Path(tmp) / f"folder{count}", Path(tmp) / f"tfrecord{count}"
            write_image_folder(folder, count, size=(IMAGE, IMAGE), classes=CLASSES)
            convert_to_tfrecords(folder, shards)
            for source in SOURCES:
                data = shards if source == "tfrecord" else folder
                out = Path(tmp) / "peak.json"
                command = [sys.executable, "-m", "bench.stream_memory", "--setup", source, "--data", str(data),
                           "--out", str(out)]
                peaks[source, count] = run_measurement(command, out)["peak_rss_mb"]
    rows = [{"source": source, **{f"peak_{count}": f"{peaks[source, count]:.0f}" for count in SIZES},
             "growth": f"{peaks[source, SIZES[1]] - peaks[source, SIZES[0]]:+.0f}"} for source in SOURCES]
    title = (f"Peak RSS (MB) of one training epoch, {IMAGE}×{IMAGE}×3 JPEGs, small CNN, batch 64, "
             f"{os.cpu_count()} CPU cores")
    report("stream_memory", argv, started, title,
           [("source", "source"), *((f"peak_{count}", f"{count} images") for count in SIZES),
            ("growth", f"{SIZES[0]} → {SIZES[1]}")], rows)


if __name__ == "__main__":
    sys.exit(main())
