"""What every benchmark shares: each measurement in fresh processes, set-ups interleaved, medians, one table, JSON.

A benchmark names its set-ups and how to start each (a command that writes the
list of its timed step durations, in seconds, to the JSON file it is given);
``interleave`` runs every set-up once per round, so load on the machine hits
them alike. This module imports no TensorFlow: the orchestrating process stays
light while the measured ones run.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def run_child(command):
    """Run ``command`` from the repository root, importing this checkout's kvision, TensorFlow's logging quiet.

    Raises ``RuntimeError`` with the ends of its output when it fails.
    """
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


def run_measurement(command, out):
    """Run ``command`` (which writes its step times to ``out``) with ``run_child``; the step times."""
    run_child(command)
    return json.loads(Path(out).read_text())


def make_parser(module, description, *, training=True, interleaved=False, setups=None):
    """The argument parser of ``python -m bench.<module>``.

    With ``training``: ``--steps`` of the timed fits. With ``interleaved``:
    ``--rounds``, and the hidden ``--out`` through which a measured process
    hands back its step times (``interleave``). ``setups``: the choices of
    the hidden ``--setup`` that names what a measured process runs.
    """
    parser = argparse.ArgumentParser(prog=f"python -m bench.{module}", description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    if training:
        parser.add_argument("--steps", type=int, default=20,
                            help="training steps per epoch; epoch 2 is timed (default: %(default)s)")
    if interleaved:
        parser.add_argument("--rounds", type=int, default=3,
                            help="interleaved repetitions of every set-up (default: %(default)s)")
        parser.add_argument("--out", help=argparse.SUPPRESS)
    if setups:
        parser.add_argument("--setup", choices=sorted(setups), help=argparse.SUPPRESS)
    return parser


def interleave(setups, rounds):
    """``{name: step times}`` over ``rounds`` rounds; ``setups`` maps a name to ``command(out_path)``."""
    times = {name: [] for name in setups}
    for _ in range(rounds):
        for name, command in setups.items():
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "steps.json"
                times[name] += run_measurement(command(out), out)
    return times


def step_stats(times):
    """Median and 90th percentile of ``times`` (seconds), in milliseconds."""
    return {"median_step_ms": round(1000 * statistics.median(times), 1),
            "p90_step_ms": round(1000 * statistics.quantiles(times, n=10)[-1], 1), "steps_timed": len(times)}


def print_table(columns, rows):
    """``rows`` (dicts) as a fixed-width table of ``columns`` ``(key, heading)``."""
    widths = [max(len(heading), *(len(str(row[key])) for row in rows)) + 2 for key, heading in columns]
    print("".join(heading.rjust(w) if i else heading.ljust(w) for i, ((_, heading), w) in enumerate(zip(columns, widths))))
    for row in rows:
        print("".join(str(row[key]).rjust(w) if i else str(row[key]).ljust(w) for i, ((key, _), w) in enumerate(zip(columns, widths))))


THROUGHPUT_COLUMNS = [("setup", "set-up"), ("median_step_ms", "median ms/step"), ("p90_step_ms", "p90"),
                      ("images_per_s", "images/s"), ("vs_kvision", "throughput vs kvision")]


def throughput_rows(times, batch):
    """Images/s per set-up of ``times`` and its throughput relative to the ``"kvision"`` set-up's."""
    base = statistics.median(times["kvision"])
    return [{"setup": name, **step_stats(t), "images_per_s": round(batch / statistics.median(t), 1),
             "vs_kvision": f"{base / statistics.median(t):.2f}x"} for name, t in times.items()]


def report(module, argv, started, title, columns, rows, *, name=None, **extra):
    """Print ``title`` and the table; write ``bench/results/<name or module>.json`` with everything to render it again.

    The JSON holds the command (``python -m bench.<module> ARGV``), date, wall
    time, machine, title, columns, rows and ``extra``.
    """
    print(title)
    print_table(columns, rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name or module}.json"
    path.write_text(json.dumps({
        "command": " ".join([f"python -m bench.{module}", *argv]),
        "date": time.strftime("%Y-%m-%d"),
        "wall_seconds": round(time.time() - started),
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "python": platform.python_version()},
        "title": title,
        "columns": columns,
        "rows": rows,
        **extra,
    }, indent=2))
    print(f"wrote {path}")
    return path


def keras_step_timer(skip_epochs=1):
    """A Keras callback whose ``times`` are the intervals between consecutive train steps after ``skip_epochs`` epochs.

    The first epoch traces and compiles the step, so it is not timed.
    """
    import keras  # here, not at the top: only measured processes load TensorFlow

    class StepTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times, self.epoch, self.last = [], 0, None

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch, self.last = epoch, None

        def on_train_batch_end(self, batch, logs=None):
            now = time.perf_counter()
            if self.epoch >= skip_epochs and self.last is not None:
                self.times.append(now - self.last)
            self.last = now

    return StepTimer()


def synthetic_images(count, shape=(32, 32, 3), num_classes=10, seed=0):
    """``count`` random uint8 images and int labels: speed does not depend on content."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, *shape), dtype=np.uint8), rng.integers(0, num_classes, count)


PHOTO_SIZE = (375, 500)  # (height, width): the most common size of ImageNet's training JPEGs


def write_image_folder(root, count, *, size, jitter=0.0, detail=0.0, classes=10):
    """``count`` training and ``max(classes, count // 10)`` test JPEGs (quality 90) under ``root/{train,test}/class<k>/``.

    Each is a random 8×8 colour field upsampled to ``(height, width)`` ``size``
    (smooth, so it compresses like a photo), each side drawn from ±``jitter``
    of it. ``detail`` adds Gaussian noise of that standard deviation drawn at
    half resolution and upsampled: texture, so a JPEG has a photo's entropy
    and costs a photo's decoding (see ``write_photo_folder``). Seeded by ``count``.
    """
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(count)
    for split, n in (("train", count), ("test", max(classes, count // 10))):
        for i in range(n):
            folder = root / split / f"class{i % classes}"
            folder.mkdir(parents=True, exist_ok=True)
            height, width = (round(side * rng.uniform(1 - jitter, 1 + jitter)) for side in size) if jitter else size
            coarse = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
            image = Image.fromarray(coarse).resize((width, height), Image.BILINEAR)
            if detail:
                noise = np.clip(rng.normal(128, detail, (height // 2, width // 2, 3)), 0, 255).astype(np.uint8)
                texture = np.asarray(Image.fromarray(noise).resize((width, height), Image.BILINEAR), np.int16) - 128
                image = Image.fromarray(np.clip(np.asarray(image, np.int16) + texture, 0, 255).astype(np.uint8))
            image.save(folder / f"{i:05d}.jpg", quality=90)


def write_photo_folder(root, count, size=PHOTO_SIZE):
    """``write_image_folder`` of ImageNet-like JPEGs: sides ±20 % around ``size``, ≈ 100 kB each at 500×375."""
    write_image_folder(root, count, size=size, jitter=0.2, detail=50)


def convert_to_tfrecords(folder, output, shards=8):
    """The image folder ``folder`` as ``shards`` TFRecord shards per split in ``output``, by ``kvision.data.convert``.

    Run in a child process, so a benchmark's orchestrating process stays free of TensorFlow.
    """
    run_child([sys.executable, "-m", "kvision.data.convert", "--dataset", "folder", "--data-dir", str(folder),
               "--output", str(output), "--shards", str(shards)])


def classifier_step_times(model, *, batch_size, steps, image_shape=(32, 32, 3), callbacks=(), **options):
    """Step times of ``fit_classifier`` training ``model`` on synthetic ``image_shape`` data, 2 epochs, the 2nd timed.

    ``model`` is a registered classifier's name (built for ``image_shape`` and
    10 classes) or a zero-argument function returning a classifier of
    ``image_shape`` images. ``batch_size`` is per replica, as in
    ``fit_classifier``; ``options`` go to it (``strategy``, ``xla``, optimiser
    settings …); ``callbacks`` run after the timer.
    """
    from kvision.models import build
    from kvision.train import fit_classifier

    model_fn = model if callable(model) else lambda: build(model, image_shape, 10)
    replicas = options["strategy"].num_replicas_in_sync if options.get("strategy") else 1
    timer = keras_step_timer()
    with tempfile.TemporaryDirectory() as run_dir:
        fit_classifier(model_fn, synthetic_images(batch_size * replicas * steps, image_shape), run_dir=run_dir, epochs=2,
                       batch_size=batch_size, seed=0, callbacks=[timer, *callbacks], verbose=0, **options)
    return timer.times


def use_keras_batch_norm():
    """Make kvision's blocks build Keras' own (unfused) ``BatchNormalization``, as a plain Keras script would."""
    import keras

    from kvision.layers import blocks

    blocks.FusedBatchNormalization = keras.layers.BatchNormalization


def script_command(script, *flags):
    """``python bench/<script> FLAGS`` as an argv list."""
    return [sys.executable, str(ROOT / "bench" / script), *map(str, flags)]
