"""Per-step cost of data parallelism on this machine: ``python -m bench.scaling``.

Trains the same model on the same global batch with kvision's classifier
engine (``fit_classifier``: tf.data pipeline with augmentation, the run
callbacks) in three set-ups, each in fresh processes:

* ``1 device``: the default strategy, one process;
* ``2 logical devices``: ``MirroredStrategy`` over two logical CPU devices of
  one process (gradients all-reduced every step);
* ``2 workers``: ``MultiWorkerMirroredStrategy``, two processes started by
  ``kvision.launch`` on 127.0.0.1 (gradients all-reduced over gRPC).

The set-ups run interleaved, ``--rounds`` times, so load on the machine hits
them alike. A step's time is the interval between consecutive
``on_train_batch_end`` calls after the first epoch (tracing excluded); the
table shows the median over all rounds and the ratio to ``1 device``.
Results go to ``bench/results/scaling_<model>.json``.
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

SETUPS = ("1 device", "2 logical devices", "2 workers")
RESULTS = Path(__file__).parent / "results"


def run_setup(setup, args, out_dir):
    """Run ``setup`` in fresh processes; the chief's step times (seconds)."""
    out = Path(out_dir) / "steps.json"
    root = Path(__file__).resolve().parents[1]
    script = str(root / "bench" / "scaling.py")
    flags = ["--worker", "--out", str(out), "--model", args.model, "--global-batch", str(args.global_batch),
             "--steps", str(args.steps)]
    if setup == "2 workers":
        command = [sys.executable, "-m", "kvision.launch", "--workers", "2", "--", script, *flags]
    else:
        command = [sys.executable, script, *flags, "--devices", "2" if setup == "2 logical devices" else "1"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(root)}
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{setup} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return json.loads(out.read_text())


def worker(args):
    """Train ``--steps`` × 2 epochs here; write the step times of epoch 2 (on the chief)."""
    # Imported here, not at the top: the orchestrating process never loads TensorFlow.
    import tensorflow as tf

    if args.devices > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * args.devices)
    import keras
    import numpy as np

    from kvision.models import build
    from kvision.train import fit_classifier, get_strategy, is_chief

    strategy = get_strategy([f"/cpu:{i}" for i in range(args.devices)] if args.devices > 1 else None)
    replicas = strategy.num_replicas_in_sync
    rng = np.random.default_rng(0)
    count = args.global_batch * args.steps
    train = rng.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, count)

    class StepTimes(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times, self.epoch = [], 0

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch, self.last = epoch, None

        def on_train_batch_end(self, batch, logs=None):
            now = time.perf_counter()
            if self.epoch > 0 and self.last is not None:
                self.times.append(now - self.last)
            self.last = now

    timer = StepTimes()
    with tempfile.TemporaryDirectory() as run_dir:
        fit_classifier(
            lambda: build(args.model, (32, 32, 3), 10), train, run_dir=run_dir, epochs=2,
            batch_size=args.global_batch // replicas, seed=0, strategy=strategy, callbacks=[timer], verbose=0,
        )
    if is_chief():
        Path(args.out).write_text(json.dumps(timer.times))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.scaling", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet20", help="a registered classifier (default: %(default)s)")
    parser.add_argument("--global-batch", type=int, default=128, help="(default: %(default)s)")
    parser.add_argument("--steps", type=int, default=20, help="steps per epoch; epoch 2 is timed (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repetitions of every set-up (default: %(default)s)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--devices", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.global_batch % 2:
        parser.error(f"--global-batch must split evenly over 2 replicas. Received: {args.global_batch}")
    if args.worker:
        return worker(args)

    times = {setup: [] for setup in SETUPS}
    start = time.time()
    for _ in range(args.rounds):
        for setup in SETUPS:
            with tempfile.TemporaryDirectory() as tmp:
                times[setup] += run_setup(setup, args, tmp)
    base = statistics.median(times["1 device"])
    rows = [
        {"setup": setup, "median_step_ms": round(1000 * statistics.median(t), 1),
         "p90_step_ms": round(1000 * statistics.quantiles(t, n=10)[-1], 1),
         "vs_1_device": round(statistics.median(t) / base, 2), "steps_timed": len(t)}
        for setup, t in times.items()
    ]
    print(f"{args.model}, global batch {args.global_batch}, {args.rounds} rounds × {args.steps} timed steps, "
          f"{os.cpu_count()} CPU cores")
    print(f"{'set-up':<20}{'median ms/step':>16}{'p90':>10}{'vs 1 device':>13}")
    for row in rows:
        print(f"{row['setup']:<20}{row['median_step_ms']:>16}{row['p90_step_ms']:>10}{row['vs_1_device']:>12}×")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"scaling_{args.model}.json"
    out.write_text(json.dumps({
        "command": " ".join(["python -m bench.scaling", *(argv if argv is not None else sys.argv[1:])]),
        "date": time.strftime("%Y-%m-%d"), "wall_seconds": round(time.time() - start),
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "python": platform.python_version()},
        "model": args.model, "global_batch": args.global_batch, "rows": rows,
    }, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
