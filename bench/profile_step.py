"""Where a training step's time goes, by TensorFlow op type: ``python -m bench.profile_step``.

Trains a registered classifier with kvision's engine exactly as
``bench.train_throughput`` does, records ``--profile-steps`` steps of the
timed epoch with the TensorFlow profiler (the trace TensorBoard's Profile tab
shows; ``--logdir`` keeps it), and reads it back with the TensorBoard profile
plugin's converter (``xprof``, in the ``bench`` extra) as per-op-type self
times. Shares are of the busy time, summed over all threads (idle time of the
thread pools left out). ``--keras-batch-norm`` profiles the model built with
Keras' own ``BatchNormalization``, the "before" of ``FusedBatchNormalization``.
"""

import collections
import json
import sys
import tempfile
import time
from pathlib import Path

from bench.harness import make_parser, report, use_keras_batch_norm
from bench.train_throughput import kvision_step_times

SHOWN = 12  # op types in the table; the rest are summed into one row


def op_type_times(logdir):
    """``{op type: total self time in µs}`` of the trace under ``logdir``, idle time excluded."""
    from xprof.convert.raw_to_tool_data import xspace_to_tool_data

    traces = sorted(str(p) for p in Path(logdir).rglob("*.xplane.pb"))
    data, _ = xspace_to_tool_data(traces, "framework_op_stats", {})
    table = json.loads(data)[0]  # the first table: every op, host and device
    keys = [column["id"] for column in table["cols"]]
    totals = collections.Counter()
    for row in table["rows"]:
        op = dict(zip(keys, (cell.get("v") for cell in row["c"])))
        if op["type"] != "IDLE":
            totals[op["type"]] += op["total_self_time"]
    return totals


def profiler_callback(logdir, first, last):
    """A Keras callback tracing the second epoch's steps ``first`` … ``last`` into ``logdir``."""
    import keras
    import tensorflow as tf

    class Profile(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_begin(self, batch, logs=None):
            if self.epoch == 1 and batch == first:
                tf.profiler.experimental.start(str(logdir))

        def on_train_batch_end(self, batch, logs=None):
            if self.epoch == 1 and batch == last:
                tf.profiler.experimental.stop()

    return Profile()


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = make_parser("profile_step", __doc__)
    parser.add_argument("--model", default="resnet20", help="a registered classifier (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=128, help="(default: %(default)s)")
    parser.add_argument("--profile-steps", type=int, default=6, help="steps traced (default: %(default)s)")
    parser.add_argument("--keras-batch-norm", action="store_true", help="build with Keras' BatchNormalization")
    parser.add_argument("--logdir", help="keep the trace here, for TensorBoard (default: a temporary directory)")
    args = parser.parse_args(argv)
    if not 0 < args.profile_steps < args.steps - 2:
        parser.error(f"--profile-steps must be between 1 and --steps - 3 ({args.steps - 3}). "
                     f"Received: {args.profile_steps}")
    if args.keras_batch_norm:
        use_keras_batch_norm()

    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        logdir = Path(args.logdir or tmp)
        first = 2  # after the epoch's first steps, whose timing the pipeline's warm-up can distort
        callback = profiler_callback(logdir, first, first + args.profile_steps - 1)
        kvision_step_times(args.model, args.batch, args.steps, callbacks=[callback])
        totals = op_type_times(logdir)

    busy = sum(totals.values())
    shown = totals.most_common(SHOWN)
    shown.append(("(all other op types)", busy - sum(t for _, t in shown)))
    rows = [{"op_type": op, "ms_per_step": round(t / 1000 / args.profile_steps, 1), "share": f"{t / busy:.1%}"}
            for op, t in shown]
    batch_norm = "Keras BatchNormalization" if args.keras_batch_norm else "FusedBatchNormalization"
    title = (f"{args.model} ({batch_norm}), batch {args.batch}, {args.profile_steps} steps traced; "
             f"busy {busy / 1000 / args.profile_steps:.0f} ms per step over all threads")
    report("profile_step", argv, started, title, [("op_type", "op type"), ("ms_per_step", "self ms/step"),
                                                  ("share", "share of busy time")], rows,
           name=f"profile_step_{args.model}" + ("_keras_bn" if args.keras_batch_norm else ""))


if __name__ == "__main__":
    sys.exit(main())
