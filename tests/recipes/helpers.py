"""Running a recipe script as ``python recipes/<script> ARGS`` would: in a fresh interpreter, or in this process.

End-to-end runs use a fresh interpreter (``run_recipe``); the quick cases
(``--help``, bad input refused before any work) run in this process
(``run_in_process``).
"""

import io
import json
import os
import runpy
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_recipe(script, *args, cwd, timeout=300):
    """``CompletedProcess`` of ``python recipes/<script> ARGS`` run in ``cwd``, output captured as text."""
    command = [sys.executable, str(ROOT / "recipes" / script), *map(str, args)]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def run_in_process(script, *args, cwd, monkeypatch):
    """``CompletedProcess`` of the recipe run as ``__main__``; ``sys.exit("msg")`` lands in stderr."""
    path = ROOT / "recipes" / script
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", [str(path), *map(str, args)])
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with redirect_stdout(out), redirect_stderr(err):
        try:
            runpy.run_path(str(path), run_name="__main__")
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else 1
            if isinstance(done.code, str):
                err.write(done.code + "\n")
    return subprocess.CompletedProcess([str(path), *map(str, args)], code, out.getvalue(), err.getvalue())


def summary_of(stdout):
    """The JSON summary a recipe prints before its summary table: the last object that starts a line."""
    text = "\n" + stdout
    return json.JSONDecoder().raw_decode(text, text.rindex("\n{\n") + 1)[0]


def run_kvision(*args, cwd, env=None, timeout=300):
    """``CompletedProcess`` of ``python -m kvision ARGS`` in ``cwd``, this checkout first on the path.

    TensorFlow's log level is left to the command (conftest sets it; a user's shell does not).
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    return subprocess.run([sys.executable, "-m", "kvision", *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
