"""Image data: load datasets from disk or TFDS, split them, and build tf.data pipelines."""

from kvision.data.dataset import ImageDataset
from kvision.data.load import DATASET_NAMES, load_dataset
from kvision.data.pipeline import make_pipeline
from kvision.data.split import labelled_subset, select_classes, train_validation_split
from kvision.data.stats import channel_stats

__all__ = [
    "DATASET_NAMES",
    "ImageDataset",
    "channel_stats",
    "labelled_subset",
    "load_dataset",
    "make_pipeline",
    "select_classes",
    "train_validation_split",
]
