"""``onnx=True`` / ``--onnx``: model.onnx beside the TFLite files, checked with ONNX Runtime in the blessing."""

import argparse
import json
import re
import sys

import numpy as np
import pytest

from kvision.errors import ExportError
from kvision.export import export_generator, verify
from kvision.export.cli import main
from kvision.export.onnx_export import ONNX_OPSET, ONNXClassifier
from kvision.models import build
from kvision.recipes.common import add_export_arguments, check_export_arguments

INSTALL = 'pip install "kvision[onnx]"'


def test_a_classifier_exports_model_onnx_matching_keras_and_is_blessed(blessed, trained_cnn, quadrants):
    pytest.importorskip("onnxruntime")
    _, result = blessed
    evaluation = json.loads((result.path / "evaluation.json").read_text())
    assert result.blessed and result.pushed
    onnx = evaluation["parity"]["onnx"]
    assert onnx["top1_agreement"] == 1.0 and onnx["accuracy_drop"] == 0.0
    assert onnx["max_abs_logit_diff"] < 1e-4, "ONNX Runtime's float32 kernels: rounding-sized differences"
    assert onnx["opset"] == ONNX_OPSET == 17 and onnx["converter"].startswith("keras 3.")
    assert set(evaluation["parity"]) >= {"tflite", "onnx", "saved_model_max_abs_logit_diff"}
    assert evaluation["sizes_bytes"]["model.onnx"] == (result.path / "model.onnx").stat().st_size
    assert evaluation["latency_ms_batch1"]["onnx"] > 0
    checks = {c["name"]: c for c in evaluation["checks"]}
    assert checks["ONNX max abs Δlogit"]["passed"] and checks["ONNX max abs Δlogit"]["bar"] == verify.ONNX_MAX_LOGIT_DIFF
    assert checks["ONNX top-1 agreement"]["passed"] and checks["ONNX top-1 agreement"]["value"] == 1.0
    assert "ONNX top-1 agreement: 1 >= 0.999" in (result.path / "BLESSED").read_text()
    card = (result.path / "MODEL_CARD.md").read_text()
    assert f"- model.onnx: ONNX opset {ONNX_OPSET}" in card and "| ONNX max abs Δlogit |" in card
    # As a user runs it: raw 0..255 images in, named outputs, any batch size.
    images = quadrants[1][0][:5].astype(np.float32)
    outputs = ONNXClassifier(result.path / "model.onnx")(images)
    keras_logits = trained_cnn.predict(images, verbose=0)
    np.testing.assert_allclose(outputs["logits"], keras_logits, atol=1e-4)
    np.testing.assert_allclose(outputs["probabilities"].sum(-1), 1.0, atol=1e-5)
    session_inputs = ONNXClassifier(result.path / "model.onnx").session.get_inputs()
    assert [(i.name, i.shape) for i in session_inputs] == [("image", ["batch", 16, 16, 1])]


def test_a_wrong_onnx_file_is_refused_by_its_parity_checks(wrong_conversions):
    pytest.importorskip("onnxruntime")
    failed = {c.name for c in wrong_conversions.failed_checks}
    assert {name for name in failed if not name.startswith("TFLite ")} == {"ONNX max abs Δlogit", "ONNX top-1 agreement"}, \
        "besides the TFLite files (of the same wrong model), only the ONNX checks fail"
    assert not wrong_conversions.pushed and wrong_conversions.path.parts[-3:] == (".rejected", "quadrants", "1")


def export_flags(argv, **options):
    parser = argparse.ArgumentParser()
    add_export_arguments(parser, **options)
    return parser.parse_args(argv)


def test_onnx_is_a_flag_wherever_tflite_is():
    assert export_flags(["--onnx"]).onnx and not export_flags([]).onnx
    assert export_flags(["--onnx"], classifier=False).onnx
    assert not hasattr(export_flags([], classifier=False, tflite=False), "onnx"), "seq2seq models take strings"


@pytest.mark.parametrize("missing", ["onnxruntime", "tf2onnx"])
def test_onnx_without_its_packages_fails_at_flag_checking_naming_the_install_command(missing, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, missing, None)  # what an environment without the package imports
    check_export_arguments(export_flags([]))
    with pytest.raises(ExportError, match=f"{re.escape(INSTALL)}.*Received: {missing} not installed"):
        check_export_arguments(export_flags(["--onnx"]))
    with pytest.raises(SystemExit) as exit_:  # before the model path is even looked at
        main([str(tmp_path / "no-such-run"), "--name", "m", "--export-dir", str(tmp_path), "--onnx"])
    assert INSTALL in str(exit_.value.code) and list(tmp_path.iterdir()) == []
    with pytest.raises(ExportError, match=re.escape(INSTALL)):
        export_generator(build("dcgan_generator", (16, 16, 1), latent_dim=8, filters=8), tmp_path, "g", onnx=True)
    assert list(tmp_path.iterdir()) == [], "refused before anything is written"


@pytest.mark.parametrize("diff, agreement, passed", [(9e-4, 0.999, [True, True]), (1.1e-3, 1.0, [False, True]),
                                                     (0.0, 0.998, [True, False])])
def test_the_onnx_bars_are_the_float32_tflite_logit_bar_and_999_in_1000_decisions(diff, agreement, passed):
    figures = {"max_abs_logit_diff": diff, "keras_max_abs_logit": 20.0, "top1_agreement": agreement}
    assert [c.passed for c in verify.onnx_checks(figures)] == passed
