"""Run a training script as a local multi-worker job: ``kvision launch --workers 2 -- train cifar10 ARGS``.

``python -m kvision.launch --workers 2 -- recipes/cifar10.py ARGS`` is the same job from a script.

Starts ``--workers`` processes of the script on this machine, each with a
``TF_CONFIG`` naming all of them on free loopback ports (127.0.0.1 only), so
``kvision.train.get_strategy()`` returns a ``MultiWorkerMirroredStrategy``
in each. Their output is shown line by line, prefixed with ``[worker i]``.
If a worker fails, the others are stopped (a collective cannot finish
without it) and, with ``--max-restarts``, the whole job starts again: with
the recipe's ``BackupAndRestore`` it resumes where the last backup left it,
as a cluster scheduler (a Kubernetes TFJob) would restart it.

This is for development and tests on one machine; on a real cluster, set
``TF_CONFIG`` per host and run the same recipe command on each (README).
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from kvision.console import HelpFormatter, prog_name

STOP_GRACE_SECONDS = 10


def free_ports(count):
    """``count`` distinct TCP ports free on 127.0.0.1 right now."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_configs(ports):
    """The ``TF_CONFIG`` of every worker of a loopback cluster on ``ports`` (worker 0 is the chief)."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    return [json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}) for i in range(len(ports))]


def _relay(stream, prefix, out):
    for line in iter(stream.readline, ""):
        out.write(f"{prefix}{line}")
        out.flush()


def _stop(processes):
    for p in processes:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for p in processes:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def run_job(command, workers, *, env=None, out=sys.stdout):
    """Run ``command`` (an argv list) as ``workers`` workers; the first non-zero exit status, or 0.

    Worker ``i``'s output lines go to ``out`` prefixed with ``[worker i]``;
    when one worker fails, the others are stopped.
    """
    processes, relays = [], []
    for index, config in enumerate(tf_configs(free_ports(workers))):
        worker_env = {**(env or os.environ), "TF_CONFIG": config}
        p = subprocess.Popen(command, env=worker_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        processes.append(p)
        print(f"launch: worker {index} is pid {p.pid}", file=out, flush=True)
        relay = threading.Thread(target=_relay, args=(p.stdout, f"[worker {index}] ", out), daemon=True)
        relay.start()
        relays.append(relay)
    try:
        while True:
            codes = [p.poll() for p in processes]  # every worker, so any one's failure is seen
            failed = [code for code in codes if code not in (None, 0)]
            if failed or None not in codes:
                status = failed[0] if failed else 0
                break
            time.sleep(0.2)
    finally:
        _stop(processes)
        for relay in relays:
            relay.join(timeout=5)
    return status


def worker_command(script, script_args):
    """The argv every worker runs: ``kvision train …`` for ``script`` "train", else ``python SCRIPT ARGS``."""
    if script == "train":
        return [sys.executable, "-m", "kvision", "train", *script_args]
    if not os.path.isfile(script):
        raise ValueError(f"Expected a Python script to run, or train RECIPE. Received: {script!r}, which is not a file")
    return [sys.executable, script, *script_args]


def main(argv=None):
    parser = argparse.ArgumentParser(prog=prog_name("python -m kvision.launch"), description=__doc__,
                                     formatter_class=HelpFormatter)
    parser.add_argument("--workers", type=int, default=2, help="worker processes to start")
    parser.add_argument("--max-restarts", type=int, default=0, help="restart the whole job this many times after a failure")
    parser.add_argument("script", help="train (then RECIPE and its flags: kvision train), or a Python script, "
                                       "e.g. recipes/cifar10.py")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="its arguments")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))  # stop the workers too
    if args.workers < 1 or args.max_restarts < 0:
        parser.error(f"--workers must be at least 1 and --max-restarts at least 0. Received: {args.workers}, {args.max_restarts}")
    script_args = args.args[1:] if args.args[:1] == ["--"] else args.args
    try:
        command = worker_command(args.script, script_args)
    except ValueError as err:
        parser.error(str(err))
    for attempt in range(args.max_restarts + 1):
        status = run_job(command, args.workers)
        if status == 0:
            return 0
        print(f"launch: a worker exited with status {status}"
              + (f"; restarting the job ({attempt + 1}/{args.max_restarts})" if attempt < args.max_restarts else ""),
              file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
