"""Running a recipe script as ``python recipes/<script> ARGS`` would, in this process.

For the quick cases (``--help``, bad input refused before any work) that do not
need a fresh interpreter; end-to-end runs use a subprocess.
"""

import io
import runpy
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_in_process(script, *args, cwd, monkeypatch):
    """``CompletedProcess`` of the recipe run as ``__main__``; ``sys.exit("msg")`` lands in stderr."""
    path = ROOT / "recipes" / script
    monkeypatch.chdir(cwd)
    monkeypatch.syspath_prepend(str(path.parent))
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
