"""Keep data tests away from the machine's real dataset locations and from the network."""

import pytest

from kvision.data import load


@pytest.fixture(autouse=True)
def isolated_locations(tmp_path, monkeypatch):
    """Point Keras' cache and the system datasets folder at empty temporary folders."""
    keras_home = tmp_path / "keras_home"
    system = tmp_path / "system_datasets"
    monkeypatch.setenv("KERAS_HOME", str(keras_home))
    monkeypatch.setattr(load, "SYSTEM_DATASETS_DIR", system)
    return keras_home, system


@pytest.fixture
def failing_tfds(monkeypatch):
    """Make ``tfds.load`` fail as it does offline, and record its calls."""
    import tensorflow_datasets as tfds

    calls = []

    def fake_load(name, **kwargs):
        calls.append((name, kwargs))
        raise ConnectionError(f"Failed to download {name}: no network\nlong traceback text")

    monkeypatch.setattr(tfds, "load", fake_load)
    return calls
