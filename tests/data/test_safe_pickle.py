"""CIFAR python batches are read without ever running code from the file."""

import builtins
import os
import pickle

import numpy as np
import pytest

from kvision.data import load_dataset
from kvision.data.safe_pickle import load_restricted_pickle
from kvision.errors import DataError
from tests.data import writers


def write_pickle(path, obj, protocol):
    """Protocol 2 the way Python 2 wrote the real batches, or a modern protocol."""
    if protocol == 2:
        writers.write_py2_pickle(path, obj)
    else:
        path.write_bytes(pickle.dumps(obj, protocol=protocol))


class CallOnLoad:
    """Unpickles as ``function(*args)``: what a malicious pickle does."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


@pytest.mark.parametrize("protocol", [2, 4])
def test_os_system_pickle_is_refused_and_not_run(tmp_path, protocol):
    written = writers.write_cifar10_python(tmp_path / "data")
    sentinel = tmp_path / "pwned"
    payload = {b"data": CallOnLoad(os.system, f"touch {sentinel}"), b"labels": []}
    write_pickle(written.path / "data_batch_2", payload, protocol)

    with pytest.raises(DataError, match=r"data_batch_2: refused to unpickle (posix|os)\.system") as info:
        load_dataset("cifar10", tmp_path / "data")
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert not sentinel.exists()


@pytest.mark.parametrize("protocol", [2, 5])
def test_eval_pickle_is_refused_and_not_run(tmp_path, protocol):
    sentinel = tmp_path / "pwned"
    path = tmp_path / "batch"
    code = f"open({str(sentinel)!r}, 'w').close()"
    write_pickle(path, CallOnLoad(builtins.eval, code), protocol)
    with pytest.raises(DataError, match=r"refused to unpickle (__builtin__|builtins)\.eval"):
        load_restricted_pickle(path)
    assert not sentinel.exists()


def test_python3_repickled_batch_is_read(tmp_path):
    """A batch re-saved by Python 3 (str keys, default protocol) only needs numpy's array pieces."""
    path = tmp_path / "batch"
    data = writers.random_images(2).transpose(0, 3, 1, 2).reshape(2, -1)
    path.write_bytes(pickle.dumps({"data": data, "labels": [3, 4]}))
    batch = load_restricted_pickle(path)
    np.testing.assert_array_equal(batch["data"], data)
    assert batch["labels"] == [3, 4]


def test_truncated_pickle_is_a_data_error(tmp_path):
    written = writers.write_cifar10_python(tmp_path)
    batch = written.path / "data_batch_1"
    batch.write_bytes(batch.read_bytes()[:200])
    with pytest.raises(DataError, match=r"data_batch_1: expected a complete CIFAR python pickle"):
        load_dataset("cifar10", tmp_path)
