"""Read a class-per-folder image directory: ``train/<class>/*.png`` and ``test/<class>/*``.

Class names are the sorted folder names under ``train/``; ``test/`` may only
use those. Images are decoded by ``kvision.data.decode.read_image_file``
(within its size budgets); if any image is in colour, grayscale ones are
repeated to RGB, and alpha channels are dropped.
"""

import numpy as np
from tqdm import tqdm

from kvision.data.dataset import ImageDataset
from kvision.data.decode import read_image_file
from kvision.data.resize import resize_uint8
from kvision.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
SPLITS = ("train", "test")


def _subdirs(directory):
    return sorted(p.name for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))


def _image_files(directory):
    return sorted(
        p for p in directory.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
    )  # fmt: skip


def _list_split(split_dir, class_names):
    """``[(path, label)]`` of every image under ``split_dir``, in class then file-name order."""
    unknown = sorted(set(_subdirs(split_dir)) - set(class_names))
    if unknown:
        raise DataError(
            f"{split_dir}: expected only class folders that also exist under train/ "
            f"({', '.join(class_names)}). Received: {', '.join(unknown)}"
        )
    items = [
        (path, label)
        for label, name in enumerate(class_names)
        if (split_dir / name).is_dir()
        for path in _image_files(split_dir / name)
    ]
    if not items:
        raise DataError(
            f"{split_dir}: expected images ({', '.join(IMAGE_EXTENSIONS)}) inside class folders. "
            f"Received: none"
        )
    return items


def decode_file(path, size):
    """The image in ``path`` (bounded: ``kvision.data.decode.read_image_file``), resized to ``size`` if given."""
    image = read_image_file(path)
    return image if size is None else resize_uint8(image, size)


def to_channels(image, channels):
    """Grayscale(+alpha) or RGB(A) ``image`` with exactly ``channels`` (1 or 3) channels."""
    if image.shape[-1] in (1, 2):  # gray, gray + alpha
        return np.repeat(image[..., :1], channels, axis=-1)
    if channels == 1:  # the luma weights of tf.image.rgb_to_grayscale
        return np.round(image[..., :3] @ np.array([0.2989, 0.5870, 0.1140]))[..., None].astype(np.uint8)
    return image[..., :3]  # RGB, RGB + alpha


def _check_one_size(items, images):
    first_path, first = items[0][0], images[0]
    for (path, _), image in zip(items, images, strict=True):
        if image.shape[:2] != first.shape[:2]:
            raise DataError(
                f"Expected every image to have one size (or pass image_size to resize them). "
                f"Received: {first_path} is {first.shape[0]}x{first.shape[1]}, "
                f"{path} is {image.shape[0]}x{image.shape[1]}"
            )


def read_image_folder(directory, image_size=None):
    """Read ``directory/train/<class>/`` and ``directory/test/<class>/`` as an ``ImageDataset``.

    Args:
        directory: folder holding ``train/`` and ``test/``.
        image_size: ``(height, width)`` to resize every image to; ``None``
            requires all images to share one size.
    """
    for split in SPLITS:
        if not (directory / split).is_dir():
            raise DataError(
                f"{directory}: expected the folders train/<class>/ and test/<class>/. "
                f"Received: no {split}/ folder"
            )
    class_names = _subdirs(directory / "train")
    items = {split: _list_split(directory / split, class_names) for split in SPLITS}
    decoded = {
        split: [
            decode_file(path, image_size)
            for path, _ in tqdm(items[split], desc=f"Decoding {split} images", disable=None)
        ]
        for split in SPLITS
    }
    every_item = items["train"] + items["test"]
    every_image = decoded["train"] + decoded["test"]
    _check_one_size(every_item, every_image)
    channels = 1 if all(image.shape[-1] in (1, 2) for image in every_image) else 3
    splits = {
        split: (
            np.stack([to_channels(image, channels) for image in decoded[split]]),
            np.array([label for _, label in items[split]], dtype=np.int64),
        )
        for split in SPLITS
    }
    return ImageDataset("image_folder", class_names, splits["train"], splits["test"], origin=str(directory))
