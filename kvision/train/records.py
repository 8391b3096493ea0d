"""What a recipe's run directory records: its settings (config.json) and its results (results.json).

Every recipe opens its run directory with ``open_run`` before it writes
anything there: a re-run with the same settings resumes (an interrupted
training goes on, a finished one is loaded, a finished phase skipped), one
with other settings is refused, and ``overwrite`` deletes the earlier run
first. So a run directory holds the results of one set of settings, and
results.json is replaced whole, never left half written.
"""

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from kvision.version import __version__
from kvision.errors import ModelError
from kvision.train.strategy import is_chief


def write_json(path, data):
    """Write ``data`` as JSON to ``path`` atomically: a process killed mid-write leaves the previous file whole."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
    os.replace(tmp, path)


def write_config(run_dir, settings):
    """Create ``run_dir`` and, on the chief, write config.json: ``settings``, the command line, kvision's version."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if is_chief():
        write_json(run_dir / "config.json", {**settings, "command": " ".join(sys.argv), "kvision": __version__})


def respell(settings, respelled):
    """``settings`` with today's value for each switch recorded as true/false before it became a choice.

    ``respelled`` is ``{name: {True: value, False: value}}``; a number equal to
    true or false is not a switch's value and stays.
    """
    return {key: respelled[key].get(value, value) if key in respelled and isinstance(value, bool) else value
            for key, value in settings.items()}


def open_run(run_dir, settings, *, may_change=(), overwrite=False, defaults=None, respelled=None):
    """Start, resume or restart a recipe's run in ``run_dir``: the results it recorded, after checking its settings.

    Nothing is written before the check. The settings of an earlier run are
    those its config.json records; a setting with another value now raises
    ``ModelError``, listing each difference, unless its key is in
    ``may_change`` (settings that change no training, or add to it). A
    setting the earlier run did not record (a flag added since) counts as
    recorded at its value in ``defaults``; one recorded as a switch
    (true/false) that has since become a choice is read through
    ``respelled``. With
    ``overwrite`` there is no check: the earlier run's files are deleted (on
    the chief) and the run starts afresh. Then config.json is written anew
    (``write_config``).

    Args:
        run_dir: the recipe's run directory.
        settings: JSON-ready ``{name: value}``, the recipe's parsed flags.
        may_change: names of settings a resumed run may change.
        overwrite: delete what an earlier run wrote in ``run_dir`` first.
        defaults: ``{name: default}`` of the settings, for a config.json older than some of them.
        respelled: ``{name: {True: value, False: value}}``, today's values of a switch that became a choice.

    Returns:
        The content of results.json, or ``{}`` for a new run.
    """
    run_dir = Path(run_dir)
    config_path, results_path = run_dir / "config.json", run_dir / "results.json"
    if config_path.exists() and overwrite:
        if is_chief():
            for entry in run_dir.iterdir():
                if entry.is_dir():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
            print(f"{run_dir}: --overwrite: the earlier run was deleted")
    elif config_path.exists():
        given = json.loads(json.dumps(settings))  # as config.json would hold them: tuples are lists
        recorded = respell({**json.loads(json.dumps(defaults or {})), **json.loads(config_path.read_text())},
                           respelled or {})
        changed = sorted(key for key in given if key not in may_change and recorded.get(key) != given[key])
        if changed:
            raise ModelError(
                f"{run_dir} holds a run with other settings; run it with its own, use another --run-dir, or add "
                "--overwrite to delete it and start afresh. Expected the recorded settings. Received (recorded → "
                f"given): {', '.join(f'{key} {recorded.get(key)!r} → {given[key]!r}' for key in changed)}"
            )
    results = json.loads(results_path.read_text()) if results_path.exists() and not overwrite else {}
    write_config(run_dir, settings)
    return results


def save_results(run_dir, results):
    """Write ``results`` to results.json in ``run_dir`` atomically (a killed run leaves the previous file); chief only."""
    if is_chief():
        write_json(Path(run_dir) / "results.json", results)


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
