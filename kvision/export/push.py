"""Export, verify, bless and push a model: the TFX Trainer → Evaluator → InfraValidator → Pusher chain.

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
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from kvision.data.decode import ImageLimits
from kvision.errors import ExportError
from kvision.export import verify
from kvision.export.files import fsync_path, fsync_tree, left_by_dead_process, owner_tag
from kvision.export.saved_model import (
    MODELS_CONFIG_TMP_PREFIX,
    check_keep_versions,
    classifier_requests,
    next_version,
    saved_model_size,
    signature_inputs,
    write_models_config,
    write_warmup,
)
from kvision.export.signatures import (
    CAPTIONER_OUTPUTS,
    TEXT_OPS_MODULE,
    TRANSLATOR_OUTPUTS,
    classifier_archive,
    generator_archive,
    generator_endpoint,
    save_captioner,
    save_translator,
)
from kvision.export.tflite import TFLiteClassifier, check_generator_variants, convert, convert_function
from kvision.models.gan import generator_classes
from kvision.version import __version__

STAGING_PREFIX = ".tmp-"
_STAGING_SERIAL = itertools.count()  # tells apart the staging directories of one process's threads
# What a text model must answer without failing: empty, unseen characters, longer than any max length.
ROBUSTNESS_INPUTS = ("", "¿ßœ☃ 42?", "supercalifragilistic" * 10)


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


def _fresh_process_checks(staging, requests, name, check_fn, *, imports=()):
    """``(summary, outputs, checks)`` of the fresh-process serving check; a crash becomes a failed check."""
    try:
        summary, outputs = verify.serve_in_fresh_process(staging, requests, name, imports=imports)
        return summary, outputs, check_fn(summary, outputs)
    except verify.ServingCheckError as err:
        summary = {"error": str(err), "signatures": {}, "latency_ms_batch1": {}}
        return summary, {}, [verify.Check(f"SavedModel loads and serves in a fresh process ({err})", 0.0, ">=", 1.0)]


def _write_tflite(staging, name, variant, content, sizes):
    path = staging / "tflite" / f"{name}_{variant}.tflite"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(content)
    sizes[f"tflite/{path.name}"] = len(content)
    return path


def _latencies(summary, tflite_results):
    return {
        **{f"saved_model/{k}": v for k, v in summary["latency_ms_batch1"].items()},
        **{f"tflite/{k}": v["latency_ms_batch1"] for k, v in tflite_results.items()},
    }


def export_classifier(
    model,
    base_dir,
    name,
    *,
    class_names,
    eval_images,
    eval_labels,
    representative_images=None,
    tflite=("float32", "int8"),
    int8_io="uint8",
    allow_select_ops=False,
    bless_min_accuracy=None,
    parity_size=256,
    limits=ImageLimits(),
    eval_crop="resize",
    **push_options,
):
    """Export classifier ``model`` as a new version of ``name`` under ``base_dir``, verified and blessed.

    Args:
        model: a classifier taking raw 0..255 float images and returning logits.
        class_names: one name per class, stored in the graph.
        eval_images, eval_labels: the evaluation split (uint8 images), for
            warmup requests, parity checks and the accuracy figures.
        representative_images: a few hundred training images calibrating int8.
        tflite: TFLite variants to write and check (see ``tflite.VARIANTS``).
        int8_io: input/output type of the int8 model: uint8, int8 or float32.
        allow_select_ops: let TFLite files use Select TF ops (Flex delegate).
        bless_min_accuracy: the model's accuracy on the evaluation split must
            reach this for the version to be blessed.
        parity_size: images of the fixed logit-parity batch.
        limits: ``ImageLimits`` of the serving requests (batch size, bytes
            and pixels of each encoded image); recorded in evaluation.json.
        eval_crop: how ``serving_default`` and ``serve_examples`` bring an
            image of another size to the model's: "resize", or "center" for a
            model trained with Inception crops (``kvision.data.crop``); the
            evaluation images must have been prepared the same way. Recorded
            in evaluation.json.
        push_options: ``version`` (default Unix time; never overwrites: taken
            before the export starts, it is refused; published by another
            export meanwhile, this one becomes the next free integer),
            ``push_only_if_blessed`` (default True: an unblessed version goes to
            ``.rejected/``), ``keep_versions`` (served by models.config),
            ``metrics``, ``training_command``, ``dataset`` (recorded in
            evaluation.json and the model card), ``verbose``.

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
    if len(class_names) != model.output_shape[-1]:
        raise ExportError(
            f"Expected one class name per model output. Received: {len(class_names)} names "
            f"for {model.output_shape[-1]} outputs"
        )

    def write_and_verify(staging):
        classifier_archive(model, class_names, limits, eval_crop).write_out(str(staging), verbose=False)
        write_warmup(staging, classifier_requests(eval_images), name)
        # Called directly, not with predict(): no tf.distribute step, so the chief of a
        # multi-worker job can export while the other workers have finished.
        keras_logits = np.concatenate([
            keras.ops.convert_to_numpy(model(eval_images[i:i + 256].astype(np.float32), training=False))
            for i in range(0, len(eval_images), 256)
        ]).astype(np.float32)
        accuracy = float(np.mean(np.argmax(keras_logits, -1) == eval_labels))
        checks = []
        if bless_min_accuracy is not None:
            checks.append(verify.Check("accuracy on the evaluation split", accuracy, ">=", bless_min_accuracy))
        parity_images = eval_images[:parity_size]
        summary, outputs, serving = _fresh_process_checks(
            staging, list(signature_inputs(parity_images).items()), name,
            lambda summary, outputs: verify.classifier_checks(summary, outputs, keras_logits[:parity_size], list(class_names)),
        )
        checks += serving
        tflite_results, sizes = {}, {"saved_model": saved_model_size(staging)}
        for variant in tflite:
            content = convert(model, variant, representative_images=representative_images, int8_io=int8_io,
                              allow_select_ops=allow_select_ops)
            path = _write_tflite(staging, name, variant, content, sizes)
            figures = verify.tflite_figures(TFLiteClassifier(path), eval_images, eval_labels, keras_logits, parity_size)
            tflite_results[variant] = figures
            checks += verify.tflite_checks(variant, figures)
        evaluation = {
            "metrics": {"accuracy": accuracy, "evaluation_examples": len(eval_labels)},
            "parity": {
                "saved_model_max_abs_logit_diff": {
                    sig: float(np.max(np.abs(v["logits"] - keras_logits[:parity_size]))) for sig, v in outputs.items()
                },
                "tflite": tflite_results,
                "parity_examples": len(parity_images),
            },
            "sizes_bytes": sizes,
            "latency_ms_batch1": _latencies(summary, tflite_results),
            "signatures": summary["signatures"],
            "limits": asdict(limits),
            "eval_crop": eval_crop,
            "class_names": list(class_names),
            "model_summary": {
                "name": model.name,
                "parameters": int(model.count_params()),
                "input": f"image {list(model.input_shape[1:])}, raw 0..255 pixels",
                "classes": int(model.output_shape[-1]),
            },
        }
        return evaluation, checks

    return push_version(base_dir, name, write_and_verify, **push_options)


def export_generator(generator, base_dir, name, *, tflite=("float32",), parity_size=64, seed=0, **push_options):
    """Export a GAN generator (networks in ``[-1, 1]``) as a verified, versioned SavedModel and TFLite files.

    ``serving_default`` takes ``noise`` float32 ``[N, latent]`` (and ``label``
    int32 ``[N]`` when conditional) and returns ``images`` uint8. The checks:
    the fresh-process SavedModel's images equal Keras' to within one grey
    level on ``parity_size`` seeded latents; TFLite float32 too; float16 and
    dynamic-range files within a mean of 2 levels. ``push_options`` as for
    ``export_classifier``.
    """
    check_generator_variants(tflite)
    latent_dim = int(generator.inputs[0].shape[-1])
    num_classes = generator_classes(generator)
    conditional = num_classes is not None
    function, specs = generator_endpoint(generator, check_labels=False)

    def inputs(count, offset):
        rng = np.random.default_rng(seed + offset)
        batch = {"noise": rng.standard_normal((count, latent_dim)).astype(np.float32)}
        if conditional:
            batch["label"] = (np.arange(count) % num_classes).astype(np.int32)
        return batch

    def write_and_verify(staging):
        generator_archive(generator).write_out(str(staging), verbose=False)
        write_warmup(staging, [("serving_default", inputs(1, 1)), ("serving_default", inputs(8, 2))], name)
        parity = inputs(parity_size, 0)
        expected = function(**parity)["images"].numpy().astype(np.int16)
        summary, outputs, checks = _fresh_process_checks(
            staging, [("serving_default", parity)], name,
            lambda summary, outputs: [
                verify.Check("SavedModel max abs Δpixel (0..255)",
                             float(np.max(np.abs(outputs["serving_default"]["images"].astype(np.int16) - expected))),
                             "<=", verify.GENERATOR_MAX_PIXEL_DIFF),
                *verify.serving_checks(summary, ("images",)),
            ],
        )
        tflite_results, sizes = {}, {"saved_model": saved_model_size(staging)}
        for variant in tflite:
            content = convert_function(generator, function, specs, variant)
            path = _write_tflite(staging, name, variant, content, sizes)
            figures = verify.generator_tflite_figures(path, parity, expected)
            tflite_results[variant] = figures
            checks += verify.generator_tflite_checks(variant, figures)
        evaluation = {
            "parity": {"tflite": tflite_results, "parity_examples": parity_size, "seed": seed},
            "sizes_bytes": sizes,
            "latency_ms_batch1": _latencies(summary, tflite_results),
            "signatures": summary["signatures"],
            "model_summary": {
                "name": generator.name,
                "parameters": int(generator.count_params()),
                "input": f"noise [{latent_dim}]" + (f", label in [0, {num_classes})" if conditional else ""),
                "output": f"images uint8 {list(generator.output_shape[1:])}",
            },
        }
        return evaluation, checks

    return push_version(base_dir, name, write_and_verify, **push_options)


def _verify_decoder(staging, name, parity, expected, *, input_name, text_key, beams_signature, outputs):
    """Warmup and fresh-process checks of a saved ``Translator`` or ``Captioner``: ``(summary, checks)``.

    The fresh process (TensorFlow and TensorFlow Text only) must decode
    ``parity`` into exactly the texts of ``expected[text_key]``, scores within 1e-3.
    """
    write_warmup(staging, [("serving_default", {input_name: parity[:1]}), ("serving_default", {input_name: parity[:8]}),
                           (beams_signature, {input_name: parity[:1]})], name)
    wanted = [text.decode("utf-8") for text in expected[text_key].numpy()]

    def compare(summary, served):
        texts = next(call[text_key] for call in summary["calls"] if call["file"] == 1)
        return [
            verify.Check(f"SavedModel {text_key} differing from in-process decoding",
                         float(sum(a != b for a, b in zip(texts, wanted, strict=True))), "<=", 0.0),
            verify.Check("SavedModel max abs Δscore",
                         float(np.max(np.abs(served["serving_default"]["scores"] - expected["scores"].numpy()))),
                         "<=", verify.TRANSLATOR_MAX_SCORE_DIFF),
            *verify.serving_checks(summary, outputs),
        ]

    summary, _, checks = _fresh_process_checks(staging, [("serving_default", {input_name: parity})], name, compare,
                                               imports=(TEXT_OPS_MODULE,))
    return summary, checks


def _metric_check(push_options, metric, label, op, bar):
    """A blessing bar on a test metric the recipe passed in ``push_options["metrics"]`` (a missing one fails)."""
    missing = float("inf") if op == "<=" else float("nan")
    return verify.Check(label, float((push_options.get("metrics") or {}).get(metric, missing)), op, bar)


def export_translator(translator, base_dir, name, sources, *, max_word_error_rate=None, **push_options):
    """Export a seq2seq ``Translator`` as a verified, versioned SavedModel (strings in, strings out).

    The checks: a fresh process with TensorFlow and TensorFlow Text only
    answers ``serving_default`` for ``sources`` and for ``ROBUSTNESS_INPUTS``
    with exactly the strings decoded here, scores within 1e-3; every
    signature answers its warmup requests; with ``max_word_error_rate``, the
    test word error rate in ``push_options["metrics"]`` is at most that.
    ``push_options`` as for ``export_classifier``.
    """
    parity = np.array([*sources, *ROBUSTNESS_INPUTS], dtype=object)
    expected = translator.translate(tf.constant(parity, tf.string))
    expected_outputs = [text.decode("utf-8") for text in expected["outputs"].numpy()]

    def write_and_verify(staging):
        save_translator(translator, staging)
        summary, checks = _verify_decoder(staging, name, parity, expected, input_name="inputs", text_key="outputs",
                                          beams_signature="translate_beams", outputs=TRANSLATOR_OUTPUTS)
        if max_word_error_rate is not None:
            checks.append(_metric_check(push_options, "word_error_rate", "test word error rate", "<=", max_word_error_rate))
        model = translator.model
        evaluation = {
            "parity": {"examples": len(parity), "robustness": dict(zip(ROBUSTNESS_INPUTS, expected_outputs[-len(ROBUSTNESS_INPUTS):]))},
            "decoding": {"beam_width": translator.beam_width, "length_penalty": translator.alpha},
            "sizes_bytes": {"saved_model": saved_model_size(staging)},
            "latency_ms_batch1": _latencies(summary, {}),
            "signatures": summary["signatures"],
            "model_summary": {
                "name": model.name,
                "parameters": int(model.count_params()),
                "input": f"text, cut to {translator.source_vocab.max_length} tokens ({translator.source_vocab.kind})",
                "output": f"text of at most {translator.max_length} tokens, beam width {translator.beam_width}, "
                          f"length penalty alpha {translator.alpha:g}",
                "needs": f"tensorflow and {TEXT_OPS_MODULE} (its ops are in the graph)",
            },
            "limitations": [
                "Figures hold for text like the evaluation data; nothing else was measured.",
                f"Inputs longer than {translator.source_vocab.max_length} tokens are cut; characters or words "
                "not in the training vocabulary are read as [UNK].",
            ],
        }
        return evaluation, checks

    return push_version(base_dir, name, write_and_verify, **push_options)


def robustness_images(image_shape, seed=0):
    """Encoded images a captioner must answer: a JPEG at its size, a larger PNG in the other colour mode."""
    rng = np.random.default_rng(seed)
    height, width, channels = image_shape
    same = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
    other = rng.integers(0, 256, (height * 2 + 3, width + 5, 4 - channels if channels in (1, 3) else 3), dtype=np.uint8)
    return [tf.io.encode_jpeg(same).numpy(), tf.io.encode_png(other).numpy()]


def export_captioner(captioner, base_dir, name, images, *, min_bleu_4=None, limits=ImageLimits(), **push_options):
    """Export an image ``Captioner`` as a verified, versioned SavedModel (encoded images in, captions out).

    The checks: a fresh process with TensorFlow and TensorFlow Text only
    answers ``serving_default`` for ``images`` (uint8, sent as PNG) and for
    ``robustness_images`` with exactly the captions decoded here, scores
    within 1e-3; every signature answers its warmup requests; with
    ``min_bleu_4``, the test BLEU-4 in ``push_options["metrics"]`` reaches it.
    ``limits`` and ``push_options`` as for ``export_classifier``.
    """
    parity = np.array([*(tf.io.encode_png(image).numpy() for image in images),
                       *robustness_images(captioner.image_shape)], dtype=object)
    expected = captioner.caption(tf.constant(parity, tf.string))

    def write_and_verify(staging):
        save_captioner(captioner, staging, limits)
        summary, checks = _verify_decoder(staging, name, parity, expected, input_name="image_bytes", text_key="captions",
                                          beams_signature="caption_beams", outputs=CAPTIONER_OUTPUTS)
        if min_bleu_4 is not None:
            checks.append(_metric_check(push_options, "bleu_4", "test BLEU-4", ">=", min_bleu_4))
        model = captioner.model
        height, width, channels = captioner.image_shape
        evaluation = {
            "parity": {"examples": len(parity),
                       "robustness": [c.decode("utf-8") for c in expected["captions"].numpy()[len(images):]]},
            "sizes_bytes": {"saved_model": saved_model_size(staging)},
            "latency_ms_batch1": _latencies(summary, {}),
            "signatures": summary["signatures"],
            "limits": asdict(limits),
            "model_summary": {
                "name": model.name,
                "parameters": int(model.count_params()),
                "input": f"JPEG/PNG/BMP/GIF bytes, decoded and resized to {height}×{width}×{channels} in the graph",
                "output": f"captions of at most {captioner.max_length} tokens, beam width {captioner.beam_width}",
                "needs": f"tensorflow and {TEXT_OPS_MODULE} (its ops are in the graph)",
            },
            "limitations": [
                "Figures hold for images like the evaluation data; nothing else was measured.",
                f"Images of another size are resized to {height}×{width}, which the training data never needed.",
            ],
        }
        return evaluation, checks

    return push_version(base_dir, name, write_and_verify, **push_options)


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
    limitations = e.get("limitations") or [
        "Figures hold for data like the evaluation data; nothing else was measured. "
        "Images of another size are resized in the graph, which the training data never saw.",
        "TFLite files take decoded tensors; decoding image bytes is left to the device.",
    ]
    lines += ["", "## Limitations", *[f"- {line}" for line in limitations], ""]
    return "\n".join(lines)
