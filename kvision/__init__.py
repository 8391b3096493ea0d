"""kvision: Keras 3 / TensorFlow 2 vision and sequence models, from data to a served model.

The flow is one direction: ``data`` → ``models`` → ``train`` → ``evaluate`` →
``export``. This module only re-exports the public API.
"""

__version__ = "0.1.0"

from kvision import data, evaluate, export, models, train  # noqa: E402
from kvision.errors import DataError, ExportError, KvisionError, ModelError  # noqa: E402

__all__ = [
    "DataError",
    "ExportError",
    "KvisionError",
    "ModelError",
    "__version__",
    "data",
    "evaluate",
    "export",
    "models",
    "train",
]
