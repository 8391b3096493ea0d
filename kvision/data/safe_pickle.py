"""Read the pickles of the CIFAR "python version" release without running code.

A pickle can call any importable function while it loads, so a plain
``pickle.load`` on a downloaded file is arbitrary code execution. The CIFAR
batches only need numpy's array reconstruction; everything else is refused.
"""

import pickle

import numpy as np

from kvision.data.files import check_file_size
from kvision.errors import DataError

try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import _reconstruct

# (module, name) -> object: exactly what a pickled numpy array refers to.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """An unpickler whose only importable globals are numpy's array pieces."""

    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refused to unpickle {module}.{name}") from None


def load_restricted_pickle(path):
    """Load the pickle at ``path`` allowing only numpy arrays and plain data.

    Uses ``encoding="bytes"`` like the Python 2 pickles of the real release, so
    dictionary keys come back as ``bytes`` (``b"data"``, ``b"labels"``).

    Raises:
        DataError: if the file refers to anything else (``refused to unpickle
            os.system``) or is not a complete pickle.
    """
    check_file_size(path)
    try:
        with open(path, "rb") as f:
            return _ArrayOnlyUnpickler(f, encoding="bytes").load()
    except pickle.UnpicklingError as err:
        message = str(err)
        if message.startswith("refused to unpickle"):
            raise DataError(
                f"{path}: {message}. Expected a CIFAR python batch, which only holds "
                f"numpy arrays, lists and strings. Received: a pickle that imports "
                f"{message.removeprefix('refused to unpickle ')}"
            ) from None
        raise DataError(
            f"{path}: expected a complete CIFAR python pickle. Received: unreadable pickle ({message})"
        ) from None
    except (EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError) as err:
        raise DataError(
            f"{path}: expected a complete CIFAR python pickle. "
            f"Received: unreadable pickle ({type(err).__name__}: {err})"
        ) from None
