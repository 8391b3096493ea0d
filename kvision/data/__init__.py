"""Image data: open datasets (in memory or streamed) from disk or TFDS, split them, and build tf.data pipelines."""

from kvision.data.dataset import ImageDataset
from kvision.data.load import DATASET_NAMES, load_dataset
from kvision.data.pipeline import make_pipeline
from kvision.data.sources import SOURCE_NAMES, open_dataset
from kvision.data.split import labelled_subset, select_classes, train_validation_split
from kvision.data.stats import channel_stats

__all__ = [
    "DATASET_NAMES",
    "SOURCE_NAMES",
    "ImageDataset",
    "channel_stats",
    "labelled_subset",
    "load_dataset",
    "make_pipeline",
    "open_dataset",
    "select_classes",
    "train_validation_split",
]
