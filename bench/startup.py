"""Start-up time of kvision's light entry points against Python itself: ``python -m bench.startup``.

Each command runs to completion in a fresh process, interleaved over
``--rounds`` rounds, timed from outside (wall time of ``subprocess.run``):

* ``python -c pass``: the interpreter alone, the baseline;
* ``python -c "import kvision"``: the lazy package root (no TensorFlow);
* ``python -m kvision.launch --help``: the multi-worker launcher's help;
* ``python -c "import kvision.models"``: what the first use of a subpackage
  costs (TensorFlow, Keras, keras-hub), for scale.

Reported: the median and range in milliseconds, the ratio to ``python -c
pass`` and whether the process imported TensorFlow (``-X importtime``, one
extra run each). The bar (issue 21): ``kvision.launch --help`` under 1 s.
"""

import os
import statistics
import subprocess
import sys
import time

from bench.harness import ROOT, make_parser, report

COMMANDS = {
    "python -c pass": ["-c", "pass"],
    "import kvision": ["-c", "import kvision"],
    "kvision.launch --help": ["-m", "kvision.launch", "--help"],
    "import kvision.models": ["-c", "import kvision.models"],
}
BASELINE = "python -c pass"
BAR_COMMAND, BAR_SECONDS = "kvision.launch --help", 1.0


def run(arguments, *, importtime=False):
    """Run ``python ARGUMENTS`` from the repository root with this checkout's kvision; its wall time and stderr."""
    command = [sys.executable, *(["-X", "importtime"] if importtime else []), *arguments]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return elapsed, done.stderr


def imports_tensorflow(importtime_log):
    """Whether a ``-X importtime`` log lists a ``tensorflow`` module."""
    names = (line.rsplit("|", 1)[-1].strip() for line in importtime_log.splitlines() if line.startswith("import time:"))
    return any(name.split(".")[0] == "tensorflow" for name in names)


def startup_rows(times, tensorflow):
    """One row per command: median and range (ms), ratio of the medians to ``BASELINE``'s, TensorFlow imported."""
    baseline = statistics.median(times[BASELINE])
    return [{"command": name, "median_ms": round(1000 * statistics.median(runs)),
             "range_ms": f"{1000 * min(runs):.0f}–{1000 * max(runs):.0f}",
             "vs_python": f"{statistics.median(runs) / baseline:.1f}x",
             "tensorflow": "yes" if tensorflow[name] else "no"} for name, runs in times.items()]


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = make_parser("startup", __doc__, training=False)
    parser.add_argument("--rounds", type=int, default=10,
                        help="interleaved repetitions of every command (default: %(default)s)")
    args = parser.parse_args(argv)
    started = time.time()
    tensorflow = {name: imports_tensorflow(run(arguments, importtime=True)[1]) for name, arguments in COMMANDS.items()}
    times = {name: [] for name in COMMANDS}
    for _ in range(args.rounds):
        for name, arguments in COMMANDS.items():
            times[name].append(run(arguments)[0])
    rows = startup_rows(times, tensorflow)
    seconds = statistics.median(times[BAR_COMMAND])
    passed = seconds < BAR_SECONDS and not tensorflow[BAR_COMMAND]
    title = f"Start-up wall time, fresh process each, median of {args.rounds} interleaved rounds"
    report("startup", argv, started, title,
           [("command", "command"), ("median_ms", "median ms"), ("range_ms", "range ms"),
            ("vs_python", "vs python -c pass"), ("tensorflow", "imports TensorFlow")], rows,
           bar={"command": BAR_COMMAND, "seconds": BAR_SECONDS, "median_seconds": round(seconds, 3), "passed": passed})
    print(f"bar: {BAR_COMMAND} in {seconds:.2f} s without TensorFlow (< {BAR_SECONDS:g} s): "
          f"{'passed' if passed else 'FAILED'}")


if __name__ == "__main__":
    sys.exit(main())
