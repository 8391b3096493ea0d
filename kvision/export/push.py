"""Export, verify, bless and push a classifier: the TFX Trainer → Evaluator → InfraValidator → Pusher chain.

One call writes everything a deployment needs into a hidden staging
directory next to the served versions, verifies it, and only then renames it
into place as ``<base>/<name>/<version>/``:

    <version>/saved_model.pb, variables/, assets/   the SavedModel (signatures.py)
    <version>/assets.extra/tf_serving_warmup_requests
    <version>/tflite/<name>_<variant>.tflite
    <version>/BLESSED or NOT_BLESSED, evaluation.json, MODEL_CARD.md

A server watching ``<base>/<name>/`` therefore never sees a half-written or
unverified version. A version that fails its checks is moved to
``<base>/.rejected/<name>/<version>/`` for inspection instead (unless pushing
unblessed models is asked for).
"""

import datetime
import json
import os
import platform
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

import kvision
from kvision.errors import ExportError
from kvision.export import verify
from kvision.export.saved_model import (
    next_version,
    saved_model_size,
    write_models_config,
    write_saved_model,
    write_warmup,
)
from kvision.export.tflite import TFLiteClassifier, convert

STAGING_PREFIX = ".tmp-"


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


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_staging(model_dir):
    """Remove staging directories of exporters on this host that died (killed mid-export)."""
    host = socket.gethostname()
    for path in Path(model_dir).glob(f"{STAGING_PREFIX}*"):
        parts = path.name[len(STAGING_PREFIX) :].rsplit("-", 2)
        if len(parts) == 3 and parts[1] == host and parts[2].isdigit() and not _pid_alive(int(parts[2])):
            shutil.rmtree(path, ignore_errors=True)


def _publish(staging, final):
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(staging, final)
    except OSError as err:  # the version appeared meanwhile (another exporter)
        raise ExportError(f"Could not publish the export as a new version directory. Received: {final} ({err})") from None


def export_classifier(
    model,
    base_dir,
    name,
    *,
    class_names,
    eval_images,
    eval_labels,
    representative_images=None,
    version=None,
    tflite=("float32", "int8"),
    int8_io="uint8",
    allow_select_ops=False,
    bless_min_accuracy=None,
    push_only_if_blessed=True,
    keep_versions=2,
    parity_size=256,
    metrics=None,
    training_command=None,
    dataset=None,
    verbose=True,
):
    """Export ``model`` as version ``version`` of ``name`` under ``base_dir``, verified and blessed.

    Args:
        model: a classifier taking raw 0..255 float images and returning logits.
        class_names: one name per class, stored in the graph.
        eval_images, eval_labels: the evaluation split (uint8 images), for
            warmup requests, parity checks and the accuracy figures.
        representative_images: a few hundred training images calibrating int8.
        version: integer version; default Unix time. Never overwrites.
        tflite: TFLite variants to write and check (see ``tflite.VARIANTS``).
        int8_io: input/output type of the int8 model: uint8, int8 or float32.
        allow_select_ops: let TFLite files use Select TF ops (Flex delegate).
        bless_min_accuracy: the model's accuracy on the evaluation split must
            reach this for the version to be blessed.
        push_only_if_blessed: move an unblessed version to ``.rejected/``
            instead of the served directory.
        keep_versions: versions the written ``models.config`` serves.
        parity_size: images of the fixed logit-parity batch.
        metrics, training_command, dataset: recorded in evaluation.json and
            the model card (``dataset``: name, origin, fingerprint).

    Returns:
        An ``ExportResult``; check ``blessed`` and ``pushed``.
    """
    eval_images = np.asarray(eval_images)
    eval_labels = np.asarray(eval_labels)
    if len(eval_images) < 9 or len(eval_images) != len(eval_labels):
        raise ExportError(
            f"Expected at least 9 evaluation images with one label each. "
            f"Received: {len(eval_images)} images, {len(eval_labels)} labels"
        )
    model_dir = Path(base_dir) / name
    version = next_version(model_dir, version)
    model_dir.mkdir(parents=True, exist_ok=True)
    clean_stale_staging(model_dir)
    staging = model_dir / f"{STAGING_PREFIX}{version}-{socket.gethostname()}-{os.getpid()}"
    try:
        evaluation, checks = _write_and_verify(
            model, staging, name, class_names, eval_images, eval_labels, representative_images,
            tflite=tflite, int8_io=int8_io, allow_select_ops=allow_select_ops,
            bless_min_accuracy=bless_min_accuracy, parity_size=parity_size,
        )
        blessed = all(c.passed for c in checks)
        evaluation.update(
            model=name,
            version=version,
            blessed=blessed,
            created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            checks=[c.as_dict() for c in checks],
            metrics={**evaluation["metrics"], **(metrics or {})},
            training_command=training_command,
            dataset=dataset,
            versions={
                "tensorflow": tf.__version__,
                "keras": keras.__version__,
                "kvision": kvision.__version__,
                "python": platform.python_version(),
            },
        )
        (staging / ("BLESSED" if blessed else "NOT_BLESSED")).write_text(
            "\n".join(f"{c.name}: {c.value:.6g} {c.op} {c.bar:g}" for c in (checks if blessed else [c for c in checks if not c.passed])) + "\n"
        )
        (staging / "evaluation.json").write_text(json.dumps(evaluation, indent=2))
        (staging / "MODEL_CARD.md").write_text(model_card(evaluation))
        pushed = blessed or not push_only_if_blessed
        final = model_dir / str(version) if pushed else Path(base_dir) / ".rejected" / name / str(version)
        _publish(staging, final)
        if pushed:
            write_models_config(base_dir, name, keep_versions=keep_versions)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    result = ExportResult(final, version, blessed, pushed, checks, evaluation)
    if verbose:
        print(verify.format_checks(checks))
        verdict = "BLESSED" if blessed else "NOT_BLESSED"
        print(f"{verdict}: {final}" + ("" if pushed else " (not pushed: the served versions are unchanged)"))
    return result


def _write_and_verify(model, staging, name, class_names, eval_images, eval_labels, representative_images, *,
                      tflite, int8_io, allow_select_ops, bless_min_accuracy, parity_size):
    """Write the SavedModel, warmup and TFLite files into ``staging``; return (evaluation, checks)."""
    if len(class_names) != model.output_shape[-1]:
        raise ExportError(
            f"Expected one class name per model output. Received: {len(class_names)} names "
            f"for {model.output_shape[-1]} outputs"
        )
    write_saved_model(model, staging, class_names)
    write_warmup(staging, eval_images, name)
    keras_logits = model.predict(eval_images.astype(np.float32), batch_size=256, verbose=0).astype(np.float32)
    accuracy = float(np.mean(np.argmax(keras_logits, -1) == eval_labels))
    checks = []
    if bless_min_accuracy is not None:
        checks.append(verify.Check("accuracy on the evaluation split", accuracy, ">=", bless_min_accuracy))

    parity_images = eval_images[:parity_size]
    try:
        summary, logits = verify.serve_in_fresh_process(staging, parity_images, name)
        checks += verify.saved_model_checks(summary, logits, keras_logits[:parity_size], list(class_names))
        parity = {sig: float(np.max(np.abs(v - keras_logits[:parity_size]))) for sig, v in logits.items()}
    except verify.ServingCheckError as err:
        summary, parity = {"error": str(err), "signatures": {}, "latency_ms_batch1": {}}, {}
        checks.append(verify.Check(f"SavedModel loads and serves in a fresh process ({err})", 0.0, ">=", 1.0))

    tflite_results, sizes = {}, {"saved_model": saved_model_size(staging)}
    for variant in tflite:
        content = convert(model, variant, representative_images=representative_images, int8_io=int8_io,
                          allow_select_ops=allow_select_ops)
        path = staging / "tflite" / f"{name}_{variant}.tflite"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(content)
        sizes[f"tflite/{path.name}"] = len(content)
        figures = verify.tflite_figures(TFLiteClassifier(path), eval_images, eval_labels, keras_logits, parity_size)
        tflite_results[variant] = figures
        checks += verify.tflite_checks(variant, figures)

    evaluation = {
        "metrics": {"accuracy": accuracy, "evaluation_examples": len(eval_labels)},
        "parity": {"saved_model_max_abs_logit_diff": parity, "tflite": tflite_results, "parity_examples": len(parity_images)},
        "sizes_bytes": sizes,
        "latency_ms_batch1": {
            **{f"saved_model/{k}": v for k, v in summary["latency_ms_batch1"].items()},
            **{f"tflite/{k}": v["latency_ms_batch1"] for k, v in tflite_results.items()},
        },
        "signatures": summary["signatures"],
        "class_names": list(class_names),
        "model_summary": {
            "name": model.name,
            "parameters": int(model.count_params()),
            "input_shape": list(model.input_shape[1:]),
            "num_classes": int(model.output_shape[-1]),
        },
    }
    return evaluation, checks


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
        f"- Keras model `{summary['name']}`, {summary['parameters']:,} parameters, "
        f"input {summary['input_shape']} raw 0..255 pixels, {summary['num_classes']} classes: "
        + ", ".join(e["class_names"]),
        f"- Trained with: `{e.get('training_command') or 'not recorded'}`",
        f"- Data: {dataset.get('name', 'not recorded')} from {dataset.get('origin', '?')}, "
        f"fingerprint `{dataset.get('fingerprint', '?')}`",
        "",
        "## Metrics on the evaluation split",
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
    lines += [
        "",
        "## Limitations",
        "- Inputs are images like the training data; other image sizes are resized in the graph, "
        "which the training data never saw. Accuracy elsewhere is not measured here.",
        "- TFLite files take decoded pixels (`image`); decoding image bytes is left to the device.",
        "",
    ]
    return "\n".join(lines)
