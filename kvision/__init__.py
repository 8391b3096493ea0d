"""kvision: Keras 3 / TensorFlow 2 vision and sequence models, from data to a served model.

The flow is one direction: ``data`` → ``models`` → ``train`` → ``evaluate`` →
``export``. This module only exposes the public API, lazily (PEP 562): the
subpackages are imported on first use (``kvision.models``), so ``import
kvision`` loads no TensorFlow, keras-hub or matplotlib and changes no global
state. ``kvision.load_model`` reads a ``.keras`` file with kvision's custom
layers, models and losses registered (``kvision.saving``).
"""

import importlib

from kvision.errors import DataError, ExportError, KvisionError, ModelError
from kvision.version import __version__

_SUBMODULES = ("data", "evaluate", "export", "launch", "layers", "models", "saving", "train")
_FUNCTIONS = {"load_model": "kvision.saving"}

__all__ = [
    "DataError",
    "ExportError",
    "KvisionError",
    "ModelError",
    "__version__",
    *_SUBMODULES,
    *_FUNCTIONS,
]


def __getattr__(name):
    """Import a subpackage, or the module of a public function, the first time it is asked for."""
    if name in _SUBMODULES:
        return importlib.import_module(f"kvision.{name}")
    if name in _FUNCTIONS:
        return getattr(importlib.import_module(_FUNCTIONS[name]), name)
    raise AttributeError(f"module 'kvision' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *__all__})
