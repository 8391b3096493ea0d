"""What a recipe's run directory records: its settings (config.json) and its results (results.json).

Recipes that train several models in turn (``recipes/transfer.py``,
``recipes/simclr.py``, ``recipes/distill.py``) resume when run again with the
same run directory: a finished training is loaded, a finished phase skipped.
So a run directory holds the results of one set of settings, and
results.json is replaced whole, never left half written.
"""

import json
import os
import sys
import time
from pathlib import Path

from kvision import __version__
from kvision.errors import ModelError
from kvision.train.strategy import is_chief


def write_config(run_dir, settings):
    """Create ``run_dir`` and, on the chief, write config.json: ``settings``, the command line, kvision's version."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if is_chief():
        config = {**settings, "command": " ".join(sys.argv), "kvision": __version__}
        (run_dir / "config.json").write_text(json.dumps(config, indent=2))


def open_run(run_dir, settings, *, may_change=()):
    """Start or resume a recipe's run in ``run_dir``: the results it recorded, after checking its settings.

    The settings of an earlier run are those its config.json records; a
    setting with another value now raises ``ModelError`` unless its key is in
    ``may_change`` (settings that change no result, or add to them). Then
    config.json is written anew (``write_config``).

    Args:
        run_dir: the recipe's run directory.
        settings: JSON-ready ``{name: value}``, the recipe's parsed flags.
        may_change: names of settings a resumed run may change.

    Returns:
        The content of results.json, or ``{}`` for a new run.
    """
    run_dir = Path(run_dir)
    config_path, results_path = run_dir / "config.json", run_dir / "results.json"
    if config_path.exists():
        recorded = json.loads(config_path.read_text())
        changed = sorted(key for key in settings if key not in may_change and recorded.get(key) != settings[key])
        if changed:
            raise ModelError(
                f"{run_dir} holds a run with other settings; use the same ones or a new --run-dir. "
                f"Expected: {', '.join(f'{key}={recorded.get(key)!r}' for key in changed)}. "
                f"Received: {', '.join(f'{key}={settings[key]!r}' for key in changed)}"
            )
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    write_config(run_dir, settings)
    return results


def save_results(run_dir, results):
    """Write ``results`` to results.json in ``run_dir`` atomically (a killed run leaves the previous file); chief only."""
    if is_chief():
        tmp = Path(run_dir) / ".results.json.tmp"
        tmp.write_text(json.dumps(results, indent=2))
        os.replace(tmp, Path(run_dir) / "results.json")


def run_phase(run_dir, results, key, fn, *, start=None, phases=None):
    """The record of phase ``key``: from an earlier run if it finished one, else ``fn()``'s, timed and saved.

    A new record is the dict ``fn()`` returns and its ``"seconds"`` since
    ``start`` (default: now); it goes in ``phases`` and ``results`` is saved
    at once (``save_results``), so a killed run keeps it and a re-run skips it.

    Args:
        run_dir: the recipe's run directory.
        results: everything results.json holds.
        key: the phase's name.
        fn: zero-argument callable that runs the phase and returns its record.
        start: when the phase began (``time.time()``), if before this call.
        phases: the dict in ``results`` that holds the phases; default ``results``.
    """
    phases = results if phases is None else phases
    if key in phases:
        print(f"{key}: done earlier, skipped")
    else:
        start = time.time() if start is None else start
        phases[key] = {**fn(), "seconds": round(time.time() - start, 1)}
        save_results(run_dir, results)
    return phases[key]
