"""export_classifier: layout, warmup, models.config, blessing, refusal to push, atomicity."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

import kvision.export.push as push
from kvision.errors import ExportError
from kvision.export import files, read_warmup, versions
from kvision.export.saved_model import next_version
from tests import bombs
from tests.export.helpers import CLASS_NAMES, HAVE_ONNX, crash_serving_check, export

ROOT = Path(__file__).resolve().parents[2]


def test_a_blessed_version_holds_everything_a_deployment_needs(blessed):
    base, result = blessed
    path = base / "quadrants" / "3"
    assert result.blessed and result.pushed and result.path == path and result.version == 3
    names = {p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()}
    assert {"saved_model.pb", "assets.extra/tf_serving_warmup_requests", "BLESSED", "evaluation.json",
            "MODEL_CARD.md", "tflite/quadrants_float32.tflite", "tflite/quadrants_int8.tflite"} <= names
    assert "NOT_BLESSED" not in names
    assert [p.name for p in (base / "quadrants").iterdir() if p.name.startswith(".")] == [], "no staging left"


def test_evaluation_json_records_parity_sizes_latency_and_provenance(blessed):
    _, result = blessed
    evaluation = json.loads((result.path / "evaluation.json").read_text())
    assert evaluation == result.evaluation | {"version": 3} and evaluation["blessed"] is True
    parity = evaluation["parity"]
    assert set(parity["saved_model_max_abs_logit_diff"]) == {"serving_default", "serve_images", "serve_examples"}
    assert max(parity["saved_model_max_abs_logit_diff"].values()) <= 1e-4
    assert parity["tflite"]["float32"]["max_abs_logit_diff"] <= 1e-3
    assert parity["tflite"]["int8"]["top1_agreement"] >= 0.98
    assert evaluation["metrics"]["accuracy"] >= 0.95 and evaluation["metrics"]["top5_accuracy"] == 1.0
    assert evaluation["sizes_bytes"]["tflite/quadrants_int8.tflite"] < evaluation["sizes_bytes"]["tflite/quadrants_float32.tflite"]
    assert set(evaluation["latency_ms_batch1"]) >= {"saved_model/serving_default", "tflite/int8"}
    assert evaluation["signatures"]["serve_images"]["inputs"] == {"images": {"dtype": "uint8", "shape": [-1, 16, 16, 1]}}
    assert evaluation["signatures"]["serving_default"]["outputs"]["class_name"]["dtype"] == "string"
    assert evaluation["training_command"] == "python train.py" and evaluation["dataset"]["fingerprint"] == "sha256:x"
    assert set(evaluation["versions"]) == {"tensorflow", "keras", "kvision", "python"}
    assert all(c["passed"] for c in evaluation["checks"])
    onnx_checks = ("ONNX max abs Δlogit", "ONNX top-1 agreement") if HAVE_ONNX else ()
    assert {c["name"] for c in evaluation["checks"]} == {
        "accuracy on the evaluation split", "SavedModel serving_default max abs Δlogit",
        "SavedModel serve_images max abs Δlogit", "SavedModel serve_examples max abs Δlogit",
        "SavedModel class_name outputs differing from Keras", "signatures answering warmup with every output",
        "kvision or TF Serving modules in the server process", "TFLite float32 max abs Δlogit",
        "TFLite int8 top-1 agreement", "TFLite int8 accuracy drop", *onnx_checks,
    }, "the checks of every artifact"
    assert evaluation["limits"] == {"max_pixels": 1000, "max_bytes": 2000, "max_batch": 300}
    card = (result.path / "MODEL_CARD.md").read_text()
    assert "**BLESSED**" in card and "`serving_default`: `image_bytes` string[-1]" in card and "top-left" in card


def test_the_published_signatures_keep_the_export_budgets(blessed):
    serve = tf.saved_model.load(str(blessed[1].path)).signatures["serving_default"]
    assert serve(image_bytes=tf.constant([tf.io.encode_png(np.zeros((31, 32, 1), np.uint8)).numpy()]))["logits"].shape == (1, 4)
    for encoded, message in ((bombs.encode(np.zeros((32, 32), np.uint8), "PNG"), r"at most 1000 pixels. Received: 32 x 32"),
                             (bombs.encode(np.zeros((31, 32, 3), np.uint8), "BMP"), r"at most 2000 bytes. Received: 3030")):
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            serve(image_bytes=tf.constant([encoded]))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"1 <= N <= 300. Received: the shape \[301\]"):
        serve(image_bytes=tf.constant([b""] * 301))


def test_warmup_has_real_requests_for_every_signature(blessed, quadrants):
    _, result = blessed
    requests = read_warmup(result.path)
    assert 0 < len(requests) <= 1000
    assert {sig for sig, _ in requests} == {"serving_default", "serve_images", "serve_examples"}
    pixels = [inputs["images"] for sig, inputs in requests if sig == "serve_images"]
    np.testing.assert_array_equal(pixels[0], quadrants[1][0][:1])


def test_models_config_is_a_model_server_config_for_the_newest_versions(blessed):
    base, _ = blessed
    config = text_format.Parse((base / "quadrants" / "models.config").read_text(), model_server_config_pb2.ModelServerConfig())
    (entry,) = config.model_config_list.config
    assert (entry.name, entry.model_platform) == ("quadrants", "tensorflow")
    assert Path(entry.base_path) == (base / "quadrants").resolve()
    assert entry.model_version_policy.latest.num_versions == 2


@pytest.mark.slow
def test_saved_model_cli_lists_the_documented_signatures(blessed):
    _, result = blessed
    cli = Path(sys.executable).with_name("saved_model_cli")
    shown = subprocess.run([str(cli), "show", "--all", "--dir", str(result.path)], capture_output=True, text=True,
                           timeout=120, check=True).stdout
    for text in ("signature_def['serving_default']", "signature_def['serve_images']", "signature_def['serve_examples']",
                 "inputs['image_bytes'] tensor_info:", "dtype: DT_UINT8", "outputs['class_name'] tensor_info:"):
        assert text in shown


def test_an_unblessed_version_is_not_pushed(trained_cnn, quadrants, tmp_path, monkeypatch):
    crash_serving_check(monkeypatch, tmp_path)  # the accuracy bar is tested: no TensorFlow process is started
    result = export(trained_cnn, quadrants, tmp_path, version=1, bless_min_accuracy=1.01)
    assert not result.blessed and not result.pushed
    assert result.path == tmp_path / ".rejected" / "quadrants" / "1"
    assert (result.path / "NOT_BLESSED").read_text().startswith("accuracy on the evaluation split:"), \
        "NOT_BLESSED lists the failed checks in order: the accuracy bar failed"
    assert versions(tmp_path / "quadrants") == [] and not (tmp_path / "quadrants" / "models.config").exists()
    forced = export(trained_cnn, quadrants, tmp_path, version=2, bless_min_accuracy=1.01, push_only_if_blessed=False)
    assert forced.pushed and (tmp_path / "quadrants" / "2" / "NOT_BLESSED").exists()


def test_a_broken_tflite_conversion_is_caught_by_parity(wrong_conversions):
    failed = {c.name for c in wrong_conversions.failed_checks}
    assert not wrong_conversions.blessed and "TFLite float32 max abs Δlogit" in failed and "TFLite int8 top-1 agreement" in failed
    assert not any(name.startswith("SavedModel") for name in failed), "the SavedModel is right"


def test_a_serving_failure_in_the_fresh_process_is_not_blessed(trained_cnn, quadrants, tmp_path, monkeypatch):
    crash_serving_check(monkeypatch, tmp_path)
    result = export(trained_cnn, quadrants, tmp_path, version=1)
    assert not result.blessed and not result.pushed
    assert "Op type not registered" in result.failed_checks[0].name


@pytest.mark.slow
def test_a_killed_export_never_appears_and_the_next_export_cleans_it_up(blessed, trained_cnn, quadrants, tmp_path,
                                                                         monkeypatch):
    """A killed export leaves no version; the next one (into a relative directory) removes its staging, takes a new
    version by Unix time and serves the K newest; a taken version is refused."""
    model_dir = tmp_path / "base" / "quadrants"
    shutil.copytree(blessed[1].path, model_dir / "3")  # a served version 3, without touching the shared export
    trained_cnn.save(tmp_path / "model.keras")
    np.savez(tmp_path / "data.npz", images=quadrants[1][0], labels=quadrants[1][1])
    # The exporter dies (SIGKILL) after the SavedModel's variables are written, before the rename.
    script = (
        "import os, signal, sys, keras, numpy as np\n"
        "import kvision.export.exporters as exporters\n"
        "def die(path, *args, **kwargs):\n"
        "    assert (path / 'variables' / 'variables.index').exists()\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "exporters.write_warmup = die\n"
        "data = np.load(sys.argv[2])\n"
        "exporters.export_classifier(keras.saving.load_model(sys.argv[1]), sys.argv[3], 'quadrants', version=9,\n"
        f"    class_names={CLASS_NAMES!r}, eval_images=data['images'], eval_labels=data['labels'], tflite=())\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "model.keras"), str(tmp_path / "data.npz"),
                           str(tmp_path / "base")], cwd=ROOT, timeout=300, capture_output=True, text=True)
    assert done.returncode == -9, done.stderr[-2000:]
    assert versions(model_dir) == [3] and next_version(model_dir, 9) == 9, "the killed version is none and stays free"
    (staging,) = [p for p in model_dir.iterdir() if p.name != "3"]
    assert staging.name.startswith(".tmp-9.") and (staging / "variables").is_dir()
    monkeypatch.chdir(tmp_path)
    second = export(trained_cnn, quadrants, "base", keep_versions=3)
    version = int(second.path.name)
    assert second.blessed and version > 1_600_000_000, "default version is Unix time"
    assert second.path == Path("base") / "quadrants" / str(version), "a relative export directory works"
    assert (model_dir / str(version) / "BLESSED").exists(), "the fresh-process check found the relative directory"
    assert sorted(os.listdir(model_dir)) == sorted(["3", str(version), "models.config"]), "the dead staging is cleaned"
    assert "num_versions: 3" in (model_dir / "models.config").read_text()
    with pytest.raises(ExportError, match="Version 3 .* already exists"):
        export(trained_cnn, quadrants, "base", version=3)


def test_only_leftovers_of_dead_exporters_on_this_host_are_cleaned(tmp_path, monkeypatch):
    monkeypatch.setattr(files.socket, "gethostname", lambda: "node-7-a")
    models, temp = tmp_path / "models", tmp_path / "tmp"
    mine = f"node-7-a-{os.getpid()}"
    for name in (".tmp-5-node-7-a-999999999", f".tmp-6-{mine}", ".tmp-7-other-host-999999999"):
        (models / name).mkdir(parents=True)
    for name in (".models.config.tmp-node-7-a-999999999", f".models.config.tmp-{mine}", "models.config"):
        (models / name).write_text("model_config_list {}")
    for name in ("kvision-serving-check-ab_1-node-7-a-999999999", f"kvision-serving-check-cd_2-{mine}",
                 "kvision-serving-check-ef_3-other-host-999999999", "unrelated-node-7-a-999999999"):
        (temp / name).mkdir(parents=True)
    push.clean_stale_staging(models, temp_dir=temp)
    assert sorted(p.name for p in models.iterdir()) == [f".models.config.tmp-{mine}", f".tmp-6-{mine}",
                                                        ".tmp-7-other-host-999999999", "models.config"]
    assert sorted(p.name for p in temp.iterdir()) == [f"kvision-serving-check-cd_2-{mine}",
                                                      "kvision-serving-check-ef_3-other-host-999999999",
                                                      "unrelated-node-7-a-999999999"]
