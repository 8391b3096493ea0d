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
import statistics
import sys
import time
from pathlib import Path

from bench.harness import (
    classifier_step_times,
    interleave,
    make_parser,
    report,
    script_command,
    step_stats,
)

SETUPS = ("1 device", "2 logical devices", "2 workers")


def command(setup, args):
    """``command(out)`` starting ``setup`` in fresh processes that write the chief's step times to ``out``."""
    flags = ["--worker", "--model", args.model, "--global-batch", args.global_batch, "--steps", args.steps]

    def start(out):
        worker = script_command("scaling.py", *flags, "--out", out)
        if setup == "2 workers":
            return [sys.executable, "-m", "kvision.launch", "--workers", "2", "--", *worker[1:]]
        return [*worker, "--devices", "2" if setup == "2 logical devices" else "1"]

    return start


def worker(args):
    """Train ``--steps`` × 2 epochs here; write the step times of epoch 2 (on the chief)."""
    # Imported here, not at the top: the orchestrating process never loads TensorFlow.
    import tensorflow as tf

    if args.devices > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * args.devices)
    from kvision.train import get_strategy, is_chief

    strategy = get_strategy([f"/cpu:{i}" for i in range(args.devices)] if args.devices > 1 else None)
    times = classifier_step_times(args.model, batch_size=args.global_batch // strategy.num_replicas_in_sync,
                                  steps=args.steps, strategy=strategy)
    if is_chief():
        Path(args.out).write_text(json.dumps(times))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = make_parser("scaling", __doc__, interleaved=True)
    parser.add_argument("--model", default="resnet20", help="a registered classifier (default: %(default)s)")
    parser.add_argument("--global-batch", type=int, default=128, help="(default: %(default)s)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--devices", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.global_batch % 2:
        parser.error(f"--global-batch must split evenly over 2 replicas. Received: {args.global_batch}")
    if args.worker:
        return worker(args)

    started = time.time()
    times = interleave({setup: command(setup, args) for setup in SETUPS}, args.rounds)
    base = statistics.median(times["1 device"])
    rows = [{"setup": setup, **step_stats(t), "vs_1_device": f"{statistics.median(t) / base:.2f}x"} for setup, t in times.items()]
    title = f"{args.model}, global batch {args.global_batch}, {args.rounds} rounds × {args.steps} steps, {os.cpu_count()} CPU cores"
    report("scaling", argv, started, title, [("setup", "set-up"), ("median_step_ms", "median ms/step"),
                                             ("p90_step_ms", "p90"), ("vs_1_device", "vs 1 device")], rows,
           name=f"scaling_{args.model}", model=args.model, global_batch=args.global_batch)


if __name__ == "__main__":
    sys.exit(main())
