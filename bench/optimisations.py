"""Before/after figures of kvision's speed work: ``python -m bench.optimisations``.

Trains a registered classifier (ResNet-20 by default) with kvision's engine
exactly as ``bench.train_throughput`` does — batch 128 of 32×32×3, SGD with
momentum, the tf.data pipeline with crop and flip, the run callbacks — once as
kvision is, and once per optimisation with that optimisation undone in the
measured process ("before"). Set-ups run in fresh processes, interleaved over
``--rounds``; the last column is each set-up's throughput relative to kvision
(below 1.00x: undoing the optimisation makes training slower).

Optimisations:

* ``Keras BatchNormalization``: the blocks of the CNN and ResNets use
  ``kvision.layers.FusedBatchNormalization`` (TensorFlow's fused kernel for
  the training pass); "before" builds them with ``keras.layers.BatchNormalization``.
"""

import json
import os
import sys
import time
from pathlib import Path

from bench.harness import (
    THROUGHPUT_COLUMNS,
    interleave,
    make_parser,
    report,
    script_command,
    throughput_rows,
    use_keras_batch_norm,
)
from bench.train_throughput import kvision_step_times

SETUPS = {"kvision": None, "Keras BatchNormalization": use_keras_batch_norm}


def measure(args):
    """Undo ``args.setup``'s optimisation in this process, train, write the step times to ``args.out``."""
    undo = SETUPS[args.setup]
    if undo:
        undo()
    Path(args.out).write_text(json.dumps(kvision_step_times(args.model, args.batch, args.steps)))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = make_parser("optimisations", __doc__, interleaved=True, setups=SETUPS)
    parser.add_argument("--model", default="resnet20", help="a registered classifier (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=128, help="(default: %(default)s)")
    args = parser.parse_args(argv)
    if args.setup:
        return measure(args)

    def command(setup):
        return lambda out: script_command("optimisations.py", "--setup", setup, "--model", args.model,
                                          "--batch", args.batch, "--steps", args.steps, "--out", out)

    started = time.time()
    times = interleave({setup: command(setup) for setup in SETUPS}, args.rounds)
    times = {setup if setup == "kvision" else f"before: {setup}": t for setup, t in times.items()}
    title = f"{args.model}, batch {args.batch}, {args.rounds} rounds × {args.steps} timed steps, {os.cpu_count()} CPU cores"
    report("optimisations", argv, started, title, THROUGHPUT_COLUMNS, throughput_rows(times, args.batch),
           name=f"optimisations_{args.model}", model=args.model, batch=args.batch)


if __name__ == "__main__":
    sys.exit(main())
