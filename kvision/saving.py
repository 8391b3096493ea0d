"""Load a ``.keras`` file saved by kvision: ``kvision.load_model(path)``.

Keras finds a custom class in a ``.keras`` file only if the module defining it
has been imported (its ``@keras.saving.register_keras_serializable`` has run).
``import kvision`` is lazy and registers nothing, so ``keras.saving.load_model``
of a kvision model fails with "Could not locate class 'FusedBatchNormalization'"
unless ``kvision.models`` was imported first. ``load_model`` imports every
module that registers one of kvision's classes, then loads, and turns Keras'
message about a class it still cannot find into a ``ModelError`` that says
what to import.
"""

import importlib
import re
from pathlib import Path

import keras

from kvision.errors import ModelError

# The modules whose import registers kvision's serializable classes: the
# layers (FusedBatchNormalization), the models (VAE, SoftAttentionDecoder and,
# through keras-hub, the Transformer layers) and the seq2seq loss
# (TokenCrossentropy, in a compiled checkpoint's compile config).
REGISTERING_MODULES = ("kvision.layers", "kvision.models", "kvision.train.seq2seq")

_UNKNOWN_CLASS = re.compile(r"Could not locate (?:class|function) '([^']+)'")


def register_custom_objects():
    """Import every module that registers a kvision class with Keras; cheap after the first call.

    Imported here, not at the top of this module, because ``kvision.train``'s
    own modules load checkpoints with ``load_model``: a top-level import of
    ``kvision.train.seq2seq`` would be circular.
    """
    for module in REGISTERING_MODULES:
        importlib.import_module(module)


def load_model(path, **options):
    """The Keras model in the ``.keras`` file ``path``, with kvision's custom classes registered first.

    Args:
        path: a ``.keras`` file, e.g. a run's ``checkpoints/best.keras``.
        **options: passed to ``keras.saving.load_model`` (``compile``,
            ``safe_mode``, ``custom_objects``).

    Raises:
        ModelError: ``path`` is not an existing ``.keras`` file, or the model
            uses a custom class that is neither Keras' nor kvision's (the
            message names it and says what to import).
    """
    path = Path(path)
    if path.suffix != ".keras" or not path.is_file():
        raise ModelError(f"Expected an existing .keras model file. Received: {path}")
    register_custom_objects()
    try:
        return keras.saving.load_model(path, **options)
    except TypeError as err:
        unknown = _UNKNOWN_CLASS.search(str(err))
        if unknown is None:
            raise
        name = unknown.group(1)
        raise ModelError(
            f"The model uses the custom class {name!r}, which Keras cannot find. kvision's own layers, models "
            "and losses are registered by kvision.load_model(path) (or by `import kvision.models, kvision.train` "
            "before keras.saving.load_model); a class of your own must be imported, decorated with "
            "@keras.saving.register_keras_serializable, before loading, or passed as "
            f"custom_objects={{{name!r}: TheClass}}. Received: {path}"
        ) from None

