import json

import pytest
import tensorflow as tf

from kvision.train import get_strategy, is_chief, worker_dir

CLUSTER = {"worker": ["127.0.0.1:20001", "127.0.0.1:20002"]}


@pytest.mark.parametrize(
    "config, chief",
    [
        (None, True),
        ({"cluster": CLUSTER, "task": {"type": "worker", "index": 0}}, True),
        ({"cluster": CLUSTER, "task": {"type": "worker", "index": 1}}, False),
        ({"cluster": {**CLUSTER, "chief": ["127.0.0.1:20000"]}, "task": {"type": "chief", "index": 0}}, True),
        ({"cluster": {**CLUSTER, "chief": ["127.0.0.1:20000"]}, "task": {"type": "worker", "index": 0}}, False),
    ],
)
def test_only_the_chief_keeps_files(monkeypatch, tmp_path, config, chief):
    if config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", json.dumps(config))
    assert is_chief() is chief
    with worker_dir(tmp_path) as out:
        (out / "file").write_text("x")
    assert (out == tmp_path) is chief
    assert out.exists() is chief, "a non-chief's scratch directory is removed"


def test_default_and_mirrored_strategies(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert get_strategy().num_replicas_in_sync == 1
    mirrored = get_strategy(["/cpu:0", "/cpu:1"])
    assert isinstance(mirrored, tf.distribute.MirroredStrategy)
    assert mirrored.num_replicas_in_sync == 2
