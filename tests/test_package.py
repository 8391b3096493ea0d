"""The package root: ``import kvision`` is light and changes nothing global; subpackages load on first use;
``kvision.load_model`` reads ``.keras`` files with kvision's custom classes; the dependencies match the imports."""

import ast
import json
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import keras
import numpy as np
import pytest

import kvision
from kvision.errors import ModelError
from kvision.layers import FusedBatchNormalization
from kvision.train.seq2seq import TokenCrossentropy

ROOT = Path(__file__).resolve().parents[1]
# svg: a backend other than Agg that works without a display, as a notebook's inline backend would be.
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3", "MPLBACKEND": "svg"}
HEAVY = ("keras", "keras_hub", "matplotlib", "numpy", "tensorflow")

LAZY_SCRIPT = """
import io, json, sys
HEAVY = {heavy!r}
def loaded():
    return sorted({{name.split(".")[0] for name in sys.modules}} & set(HEAVY))
import kvision
light = {{"loaded": loaded(), "dir": dir(kvision), "version": kvision.__version__,
          "data_error": [cls.__name__ for cls in kvision.DataError.__mro__[:3]]}}
import matplotlib
backend = matplotlib.get_backend()
models = kvision.models  # the first use imports the subpackage, and TensorFlow with it
png = io.BytesIO()
kvision.evaluate.plot_confusion_matrix([[3, 1], [0, 4]], ["a", "b"], png)
print(json.dumps({{**light, "backend_before": backend, "backend_after": matplotlib.get_backend(),
                  "png": png.getvalue()[:4].decode("latin-1"),
                  "models": [models.__name__, "cnn" in models.list_models()], "after_use": loaded()}}))
"""

LOAD_SCRIPT = """
import json, sys
import keras, numpy as np
import kvision
kvision_model, foreign_model, images = sys.argv[1:]
out = {}
try:
    keras.saving.load_model(kvision_model)
    out["plain_keras"] = "loaded"
except TypeError as err:
    out["plain_keras"] = str(err)
model = kvision.load_model(kvision_model)
out["logits"] = model.predict(np.load(images), verbose=0).tolist()
out["loss"] = [type(model.loss).__name__, model.loss.label_smoothing]
try:
    kvision.load_model(foreign_model)
except kvision.ModelError as err:
    out["foreign"] = str(err)
print(json.dumps(out))
"""


@keras.saving.register_keras_serializable(package="kvision_tests")
class Doubling(keras.layers.Layer):
    """A custom layer registered only in this test process: unknown to a fresh one."""

    def call(self, inputs):
        return 2 * inputs


def run_python(*arguments):
    """The JSON a fresh ``python ARGUMENTS`` prints on its last line."""
    done = subprocess.run([sys.executable, *arguments], cwd=ROOT, env=ENV, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_import_kvision_loads_no_tensorflow_and_keeps_the_matplotlib_backend():
    result = run_python("-c", LAZY_SCRIPT.format(heavy=HEAVY))
    assert result["loaded"] == [], "import kvision must import none of TensorFlow, Keras, keras-hub, matplotlib, NumPy"
    assert result["version"] == kvision.__version__
    assert result["data_error"] == ["DataError", "KvisionError", "ValueError"]
    for name in ("DataError", "ModelError", "ExportError", "data", "evaluate", "export", "layers", "models", "train",
                 "load_model", "__version__"):
        assert name in result["dir"]
    assert result["models"] == ["kvision.models", True]
    assert "tensorflow" in result["after_use"], "kvision.models is a real subpackage, imported on first use"
    assert result["backend_before"] == result["backend_after"] == "svg"
    assert result["png"] == "\x89PNG"


def test_launch_help_imports_no_tensorflow():
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "kvision.launch", "--help"], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "--workers" in done.stdout
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0]
                for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "kvision" in imported and "argparse" in imported, "the -X importtime log lists the imports"
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))


def test_no_module_switches_the_backend_uses_pyplot_or_imports_the_package_root():
    """Keras imports pyplot itself (keras.visualization), so this is checked in kvision's code, not sys.modules."""
    offenders = []
    for path in sorted((ROOT / "kvision").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]  # `from kvision import x` imports the package root
            elif isinstance(node, ast.Call) and ast.unparse(node.func) in ("matplotlib.use", "plt.switch_backend"):
                names = [ast.unparse(node.func)]
            else:
                continue
            bad = [name for name in names if name in ("kvision", "matplotlib.pyplot", "matplotlib.use", "plt.switch_backend")]
            offenders += [f"{path.relative_to(ROOT)}: {name}" for name in bad]
    assert offenders == [], offenders


def test_unknown_attributes_raise_attribute_error():
    with pytest.raises(AttributeError, match="module 'kvision' has no attribute 'modles'"):
        kvision.modles  # noqa: B018


def test_load_model_registers_kvision_classes_and_names_a_foreign_one(tmp_path):
    model = kvision.models.build("cnn", (8, 8, 1), 3, filters=(4,), convs_per_block=1, dense_units=8)
    assert any(isinstance(layer, FusedBatchNormalization) for layer in model.layers)
    model.compile(optimizer="adam", loss=TokenCrossentropy(label_smoothing=0.1))
    model.save(tmp_path / "kvision.keras")
    inputs = keras.Input((4,))
    keras.Model(inputs, Doubling()(inputs)).save(tmp_path / "foreign.keras")
    images = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 1)).astype(np.float32)
    np.save(tmp_path / "images.npy", images)

    result = run_python("-c", LOAD_SCRIPT, str(tmp_path / "kvision.keras"), str(tmp_path / "foreign.keras"),
                        str(tmp_path / "images.npy"))
    # What a user calling Keras directly after `import kvision` gets; the README says to use kvision.load_model.
    assert "Could not locate class 'FusedBatchNormalization'" in result["plain_keras"]
    np.testing.assert_allclose(result["logits"], model.predict(images, verbose=0), rtol=1e-5, atol=1e-5)
    assert result["loss"] == ["TokenCrossentropy", 0.1]
    assert "custom class 'Doubling'" in result["foreign"]
    assert "register_keras_serializable" in result["foreign"]
    assert result["foreign"].endswith(f"Received: {tmp_path / 'foreign.keras'}")


def test_load_model_refuses_a_missing_file(tmp_path):
    with pytest.raises(ModelError, match=r"Expected an existing \.keras model file\. Received: .*missing\.keras"):
        kvision.load_model(tmp_path / "missing.keras")


def _requirements(node, lists):
    """Distribution names (normalised) of a list of requirement strings in setup.py.

    ``lists`` maps setup.py's module-level names (``ONNX = [...]``) to their lists, for ``*ONNX`` and ``ONNX``.
    """
    if isinstance(node, ast.Name):
        return _requirements(lists[node.id], lists)
    names = set()
    for element in node.elts:
        if isinstance(element, ast.Starred):
            names |= _requirements(element.value, lists)
        else:
            names.add(re.split(r"[<>=\[;! ]", element.value, maxsplit=1)[0].lower().replace("_", "-"))
    return names


def declared_distributions():
    """``(install_requires, extras except bench)`` of setup.py, read from its syntax tree (nothing is run)."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    lists = {node.targets[0].id: node.value for node in tree.body
             if isinstance(node, ast.Assign) and isinstance(node.value, ast.List) and isinstance(node.targets[0], ast.Name)}
    call = next(node for node in ast.walk(tree) if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "setup")
    keywords = {keyword.arg: keyword.value for keyword in call.keywords}
    extras = keywords.get("extras_require")
    optional = set().union(*(_requirements(value, lists) for key, value in zip(extras.keys, extras.values)
                             if key.value != "bench")) if extras else set()
    return _requirements(keywords["install_requires"], lists), optional


def imported_top_level_modules():
    """``{module: [files]}`` of every absolute import in kvision/ outside the standard library and kvision."""
    found = {}
    for path in sorted((ROOT / "kvision").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else [])
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "kvision":
                    found.setdefault(top, []).append(str(path.relative_to(ROOT)))
    return found


# Declared but never imported by kvision, and why.
NOT_IMPORTED = {
    "importlib-resources": "tensorflow-datasets imports it (through etils) without declaring it",
    "tensorboard": "the `tensorboard --logdir` command the recipes point to (tf.summary writes its files)",
}


def test_every_third_party_import_is_declared_and_every_requirement_is_used():
    required, optional = declared_distributions()
    providers = metadata.packages_distributions()
    imported = set()
    for module, files in imported_top_level_modules().items():
        distributions = {name.lower().replace("_", "-") for name in providers.get(module, [module])}
        assert distributions & (required | optional), f"{module} is imported by {files} but not declared in setup.py"
        imported |= distributions
    assert required - imported <= set(NOT_IMPORTED), f"declared, never imported: {sorted(required - imported)}"
