"""The budget on a data file a user hands to a loader, checked with ``stat`` before a byte is read.

A dataset file (an IDX file's values, a CIFAR batch or pickle, an ``.npz``'s
arrays, everything an archive extracts) is far below it: Fashion-MNIST's
largest file is 47 MB, CIFAR-100's 155 MB. A larger one, or a link to one,
is refused by name instead of being read into memory.
"""

from pathlib import Path

from kvision.errors import DataError

MAX_FILE_BYTES = 2**30  # 1 GiB


def check_file_size(path, max_bytes=None, what="a data file"):
    """The size of file ``path`` (links followed); ``DataError`` if over ``max_bytes`` (default ``MAX_FILE_BYTES``)."""
    max_bytes = MAX_FILE_BYTES if max_bytes is None else max_bytes
    size = Path(path).stat().st_size
    if size > max_bytes:
        raise DataError(f"{path}: expected {what} of at most {max_bytes} bytes. Received: {size} bytes")
    return size
