"""Stage, bless and publish a version: the TFX Pusher, shared by every exporter (``exporters.py``).

One call writes everything a deployment needs into a hidden staging
directory next to the served versions (the exporter's ``write_and_verify``
callback fills it and returns its checks), and only then renames it into
place as ``<base>/<name>/<version>/``:

    <version>/saved_model.pb, variables/, assets/   the SavedModel (signatures.py)
    <version>/assets.extra/tf_serving_warmup_requests
    <version>/tflite/<name>_<variant>.tflite
    <version>/model.onnx                            with onnx=True (classifiers, generators)
    <version>/BLESSED or NOT_BLESSED, evaluation.json, MODEL_CARD.md

A server watching ``<base>/<name>/`` therefore never sees a half-written or
unverified version. A version that fails its checks is moved to
``<base>/.rejected/<name>/<version>/`` for inspection instead (unless pushing
unblessed models is asked for). The rename is also the lock between
concurrent exporters: when the version was published meanwhile, the finished
work becomes the next free integer instead of being lost.
"""

import datetime
import errno
import itertools
import json
import os
import platform
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import keras
import tensorflow as tf

from kvision.export import verify
from kvision.export.files import fsync_path, fsync_tree, left_by_dead_process, owner_tag
from kvision.export.saved_model import MODELS_CONFIG_TMP_PREFIX, check_keep_versions, next_version, write_models_config
from kvision.version import __version__

STAGING_PREFIX = ".tmp-"
_STAGING_SERIAL = itertools.count()  # tells apart the staging directories of one process's threads


@dataclass
class ExportResult:
    """Where a version went and whether it was blessed; ``evaluation`` is its evaluation.json."""

    path: Path
    version: int
    blessed: bool
    pushed: bool
    checks: list = field(default_factory=list)
    evaluation: dict = field(default_factory=dict)

    @property
    def failed_checks(self):
        return [c for c in self.checks if not c.passed]


def clean_stale_staging(model_dir, temp_dir=None):
    """Remove what exporters on this host that died (killed mid-export) left behind.

    That is their staging directories and ``models.config`` temporaries in
    ``model_dir``, and their serving-check directories in ``temp_dir``
    (default: the system's temporary directory).
    """
    leftovers = [(Path(model_dir), STAGING_PREFIX), (Path(model_dir), MODELS_CONFIG_TMP_PREFIX),
                 (Path(temp_dir or tempfile.gettempdir()), verify.SERVING_CHECK_PREFIX)]
    for folder, prefix in leftovers:
        for path in folder.glob(f"{prefix}*"):
            if not left_by_dead_process(path, prefix):
                continue
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def _warn(message):
    print(f"warning: {message}", file=sys.stderr)


def _rename_unless_taken(source, target):
    """Rename ``source`` to ``target`` unless ``target`` exists; False when it does.

    A directory renamed onto an empty directory would replace it, hence the
    check first; a version published between the check and the rename is
    not empty, so the rename itself fails then.
    """
    if os.path.lexists(target):
        return False
    try:
        os.rename(source, target)
    except OSError as err:
        if err.errno in (errno.EEXIST, errno.ENOTEMPTY):
            return False
        raise
    return True


def _publish(staging, parent, evaluation):
    """Rename ``staging`` to ``parent/<version>``, everything fsynced first; return the published path.

    When another exporter took the version meanwhile, the finished work takes
    the next free integer: its evaluation.json and MODEL_CARD.md are
    rewritten with that version before the next attempt.
    """
    parent.mkdir(parents=True, exist_ok=True)
    wanted = evaluation["version"]
    while True:
        (staging / "evaluation.json").write_text(json.dumps(evaluation, indent=2))
        (staging / "MODEL_CARD.md").write_text(model_card(evaluation))
        fsync_tree(staging)
        final = parent / str(evaluation["version"])
        if _rename_unless_taken(staging, final):
            break
        evaluation["version"] += 1
    if evaluation["version"] != wanted:
        _warn(f"version {wanted} was published by another export meanwhile; this one is {final}")
    return final


def push_version(base_dir, name, write_and_verify, *, version=None, push_only_if_blessed=True, keep_versions=2,
                 metrics=None, training_command=None, dataset=None, verbose=True):
    """Stage, verify, bless and push one version; the artifact-specific part is ``write_and_verify``.

    ``write_and_verify(staging_dir)`` writes the SavedModel (and anything
    else) into ``staging_dir`` and returns ``(evaluation, checks)``; this
    function adds the verdict files, evaluation.json and MODEL_CARD.md and
    renames the directory into place (or into ``.rejected/``).
    """
    model_dir = Path(base_dir) / name
    check_keep_versions(keep_versions)
    version = next_version(model_dir, version)
    model_dir.mkdir(parents=True, exist_ok=True)
    clean_stale_staging(model_dir)
    staging = model_dir / f"{STAGING_PREFIX}{version}.{next(_STAGING_SERIAL)}-{owner_tag()}"
    try:
        evaluation, checks = write_and_verify(staging)
        blessed = all(c.passed for c in checks)
        evaluation.update(
            model=name,
            version=version,
            blessed=blessed,
            created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            checks=[c.as_dict() for c in checks],
            metrics={**evaluation.get("metrics", {}), **(metrics or {})},
            training_command=training_command,
            dataset=dataset,
            versions={
                "tensorflow": tf.__version__,
                "keras": keras.__version__,
                "kvision": __version__,
                "python": platform.python_version(),
            },
        )
        shown = checks if blessed else [c for c in checks if not c.passed]
        (staging / ("BLESSED" if blessed else "NOT_BLESSED")).write_text(
            "".join(f"{c.name}: {c.value:.6g} {c.op} {c.bar:g}\n" for c in shown)
        )
        pushed = blessed or not push_only_if_blessed
        final = _publish(staging, model_dir if pushed else Path(base_dir) / ".rejected" / name, evaluation)
    except OSError as err:
        if err.errno is not None and err.filename is None:  # a write on a full disk names no file
            err.filename = str(staging)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    try:
        fsync_path(final.parent)
        if pushed:
            write_models_config(base_dir, name, keep_versions=keep_versions)
    except OSError as err:  # the version is out: a retry would publish it twice
        _warn(f"{final} is published, but its folder could not be synced or models.config rewritten. Received: {err}")
    result = ExportResult(final, evaluation["version"], blessed, pushed, checks, evaluation)
    if verbose:
        print(verify.format_checks(checks))
        verdict = "BLESSED" if blessed else "NOT_BLESSED"
        print(f"{verdict}: {final}" + ("" if pushed else " (not pushed: the served versions are unchanged)"))
    return result


def model_card(evaluation):
    """A human-readable MODEL_CARD.md from the evaluation record."""
    e = evaluation
    summary = e["model_summary"]
    dataset = e.get("dataset") or {}
    lines = [
        f"# {e['model']} — version {e['version']}",
        "",
        f"**{'BLESSED' if e['blessed'] else 'NOT BLESSED'}** · exported {e['created']} · "
        + ", ".join(f"{k} {v}" for k, v in e["versions"].items()),
        "",
        "## Model",
        f"- Keras model `{summary['name']}`, {summary['parameters']:,} parameters; "
        + "; ".join(f"{k}: {v}" for k, v in summary.items() if k not in ("name", "parameters")),
        *([f"- Class names: {', '.join(e['class_names'])}"] if e.get("class_names") else []),
        f"- Trained with: `{e.get('training_command') or 'not recorded'}`",
        f"- Data: {dataset.get('name', 'not recorded')} from {dataset.get('origin', '?')}, "
        f"fingerprint `{dataset.get('fingerprint', '?')}`",
        "",
        "## Metrics",
        *[f"- {k}: {v:.4f}" if isinstance(v, float) else f"- {k}: {v}" for k, v in e["metrics"].items() if not isinstance(v, (dict, list))],
        "",
        "## Checks",
        "| check | value | bar | passed |",
        "|---|---|---|---|",
        *[f"| {c['name']} | {c['value']:.4g} | {c['op']} {c['bar']:g} | {'yes' if c['passed'] else 'NO'} |" for c in e["checks"]],
        "",
        "## Signatures (SavedModel, for TF Serving)",
    ]
    for name, spec in e["signatures"].items():
        inputs = ", ".join(f"`{k}` {v['dtype']}{v['shape']}" for k, v in spec["inputs"].items())
        outputs = ", ".join(f"`{k}` {v['dtype']}{v['shape']}" for k, v in spec["outputs"].items())
        lines.append(f"- `{name}`: {inputs} → {outputs}")
    lines += ["", "## Files, sizes and batch-1 latency on the exporting machine (CPU)"]
    lines += [f"- {k}: {v / 1e6:.2f} MB" for k, v in e["sizes_bytes"].items()]
    lines += [f"- {k}: {v:.2f} ms" for k, v in e["latency_ms_batch1"].items()]
    onnx = e.get("parity", {}).get("onnx")
    if onnx:
        lines.append(f"- model.onnx: ONNX opset {onnx['opset']}, written by {onnx['converter']}, "
                     f"checked with ONNX Runtime {onnx['onnxruntime']}")
    limitations = e.get("limitations") or [
        "Figures hold for data like the evaluation data; nothing else was measured. "
        "Images of another size are resized in the graph, which the training data never saw.",
        f"{'TFLite and ONNX files take' if onnx else 'TFLite files take'} decoded tensors; "
        "decoding image bytes is left to the device.",
    ]
    lines += ["", "## Limitations", *[f"- {line}" for line in limitations], ""]
    return "\n".join(lines)
