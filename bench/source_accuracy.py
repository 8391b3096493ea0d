"""The same accuracy from every source: ``python -m bench.source_accuracy [--sources …] [--work DIR]``.

Fashion-MNIST (the Debian IDX files, or ``--data-dir``) is written as a PNG
folder (``train/<class>/``, ``test/<class>/``, one lossless PNG per image)
and, with ``python -m kvision.data.convert``, as 8 TFRecord shards with a
validation split carved by a hash of each example's id (1/12 of train, the
5 000 of 60 000 the in-memory path holds out). Then the README's main job,
``recipes/fashion_mnist.py`` with its defaults, is trained from each source
in turn, alone on the machine:

* ``memory``: ``--dataset fashion_mnist`` (the in-memory fast path, 5 000
  seeded training images held out);
* ``folder``: ``--dataset folder`` (streamed, ``--validation-share 1/12`` by a
  hash of each file's path);
* ``tfrecord``: ``--dataset tfrecord`` (streamed shards).

Reported: each run's test accuracy (the best-validation weights, evaluated
once on the 10 000 test images), its difference from ``memory``, and the
bar: every streamed source within ±0.3 points. Each run takes the main job's
time (~50 min on 2 cores); runs live under ``--work`` and a finished one is
loaded, not trained again, so the benchmark can be run source by source.
"""

import json
import subprocess
import sys
import time
from pathlib import Path

from bench.harness import ROOT, make_parser, report

SOURCES = ("memory", "folder", "tfrecord")
VALIDATION_SHARE = 5000 / 60000  # what the in-memory path holds out
BAR = 0.003


def write_png_folder(data_dir, root):
    """Fashion-MNIST as ``root/{train,test}/<class>/NNNNN.png`` ("/" in a class name becomes "-")."""
    from PIL import Image

    from kvision.data import load_dataset

    dataset = load_dataset("fashion_mnist", data_dir)
    for split, (images, labels) in (("train", dataset.train), ("test", dataset.test)):
        for i, (image, label) in enumerate(zip(images, labels)):
            folder = root / split / dataset.class_names[label].replace("/", "-")
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image[..., 0]).save(folder / f"{i:05d}.png")


def prepare(work, data_dir):
    """The PNG folder and the TFRecord shards under ``work`` (kept between runs); returns their paths."""
    folder, shards = work / "fashion_mnist_png", work / "fashion_mnist_tfrecord"
    if not (folder / "test").is_dir():
        staging = work / ".fashion_mnist_png.partial"
        write_png_folder(data_dir, staging)
        staging.rename(folder)
    if not (shards / "manifest.json").is_file():
        subprocess.run([sys.executable, "-m", "kvision.data.convert", "--dataset", "fashion_mnist",
                        *(["--data-dir", data_dir] if data_dir else []), "--output", str(shards), "--shards", "8",
                        "--validation-size", f"{VALIDATION_SHARE:.5f}"], cwd=ROOT, check=True)
    return folder, shards


def train(source, work, data_dir, folder, shards):
    """The main job from ``source``; returns its test accuracy and wall seconds."""
    flags = {
        "memory": ["--dataset", "fashion_mnist", *(["--data-dir", data_dir] if data_dir else [])],
        "folder": ["--dataset", "folder", "--data-dir", str(folder), "--validation-share", f"{VALIDATION_SHARE:.5f}"],
        "tfrecord": ["--dataset", "tfrecord", "--data-dir", str(shards)],
    }[source]
    run_dir = work / "runs" / source
    start = time.time()
    subprocess.run([sys.executable, str(ROOT / "recipes" / "fashion_mnist.py"), *flags, "--run-dir", str(run_dir),
                    "--export-dir", str(work / "saved_models"), "--name", f"fashion_mnist_{source}"],
                   cwd=ROOT, check=True)
    report_json = json.loads((run_dir / "evaluation" / "report.json").read_text())
    return report_json["accuracy"], time.time() - start


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = make_parser("source_accuracy", __doc__, training=False)
    parser.add_argument("--sources", nargs="+", choices=SOURCES, default=list(SOURCES),
                        help="sources to train from, in order (default: all three)")
    parser.add_argument("--work", default="runs/source_accuracy",
                        help="where the data, runs and exports go; finished runs are reused (default: %(default)s)")
    parser.add_argument("--data-dir", help="Fashion-MNIST's IDX files (default: where the main job finds them)")
    args = parser.parse_args(argv)
    started = time.time()
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    folder, shards = prepare(work, args.data_dir)
    results = {source: train(source, work, args.data_dir, folder, shards) for source in args.sources}
    baseline = results.get("memory", (None,))[0]
    rows = [{"source": source, "accuracy": f"{accuracy:.2%}",
             "difference": "" if baseline is None or source == "memory" else f"{(accuracy - baseline) * 100:+.2f} pt",
             "wall": f"{seconds / 60:.0f} min"} for source, (accuracy, seconds) in results.items()]
    streamed = [accuracy for source, (accuracy, _) in results.items() if source != "memory"]
    bar = None if baseline is None or not streamed else all(abs(a - baseline) <= BAR for a in streamed)
    if bar is not None:
        print(f"bar (every streamed source within ±{BAR * 100:.1f} pt of in memory): {'PASS' if bar else 'FAIL'}")
    report("source_accuracy", argv, started,
           "Fashion-MNIST test accuracy of the main job (recipes/fashion_mnist.py, defaults) from each source",
           [("source", "source"), ("accuracy", "test accuracy"), ("difference", "vs in memory"), ("wall", "wall")],
           rows, bar=bar)


if __name__ == "__main__":
    sys.exit(main())
