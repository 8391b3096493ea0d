"""Export: verified, versioned SavedModels for TF Serving, TFLite files for devices and ONNX files.

``export_classifier`` (``export_generator`` for GANs, ``export_translator``
for seq2seq models, ``export_captioner`` for image captioners) is the entry point
recipes and ``python -m kvision.export`` call; the modules behind it are ``signatures`` (what the
SavedModel answers), ``saved_model`` (writing, warmup, versions,
models.config), ``tflite`` (conversion, LiteRT inference), ``onnx_export``
(model.onnx, ONNX Runtime inference), ``verify``
(fresh-process serving check, parity), ``exporters`` (the four
``export_*`` functions) and ``push`` (staging, blessing, atomic publish).
"""

from kvision.export.exporters import export_captioner, export_classifier, export_generator, export_translator
from kvision.export.onnx_export import ONNXClassifier, ONNXGenerator
from kvision.export.push import ExportResult
from kvision.export.saved_model import next_version, read_warmup, versions, write_models_config
from kvision.export.signatures import classifier_archive, generator_archive, save_captioner, save_translator
from kvision.export.tflite import TFLiteClassifier, convert

__all__ = [
    "ExportResult",
    "ONNXClassifier",
    "ONNXGenerator",
    "TFLiteClassifier",
    "classifier_archive",
    "convert",
    "export_captioner",
    "export_classifier",
    "export_generator",
    "export_translator",
    "generator_archive",
    "next_version",
    "read_warmup",
    "save_captioner",
    "save_translator",
    "versions",
    "write_models_config",
]
