"""tf.data service: a local dispatcher and worker on 127.0.0.1 serve the same examples as the pipeline itself."""

import signal
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from kvision.data.service import LocalService, check_address, distribute
from kvision.data.stream import StreamSplit, stream_pipeline
from kvision.errors import DataError

COUNT = 23


def split():
    images = [tf.io.encode_png(np.full((10, 12, 1), i, np.uint8)).numpy() for i in range(COUNT)]

    def read(input_context=None, shuffle=False, seed=None):
        ids = [str(i) for i in range(COUNT)]
        dataset = tf.data.Dataset.from_tensor_slices((images, np.arange(COUNT, dtype=np.int64), ids))
        return dataset.shuffle(COUNT, seed=seed) if shuffle else dataset

    return StreamSplit(COUNT, read)


def epoch(dataset):
    """``(sorted labels, sorted per-image pixel sums)`` of one pass over ``dataset``."""
    labels, sums = zip(*[(y.numpy(), tf.reduce_sum(x, axis=[1, 2, 3]).numpy()) for x, y in dataset])
    return sorted(np.concatenate(labels).tolist()), sorted(np.concatenate(sums).tolist())


@pytest.mark.slow
def test_an_epoch_from_the_service_holds_the_same_examples_as_without():
    service = LocalService(workers=1)
    try:
        assert service.address.startswith("grpc://127.0.0.1:")
        pipeline = stream_pipeline(split(), image_shape=(8, 8, 1), batch_size=4, training=True, seed=3, crop_padding=0,
                                   flip=False, drop_remainder=False)
        local = epoch(pipeline)
        assert local[0] == list(range(COUNT))
        assert epoch(distribute(pipeline, service.address)) == local
    finally:
        service.stop()


@pytest.mark.parametrize("address", ["localhost:5050", "grpc://localhost", "http://127.0.0.1:5050", "grpc://:5050"])
def test_a_malformed_address_is_refused(address):
    with pytest.raises(DataError, match=rf"Expected --data-service as grpc://HOST:PORT .* Received: '{address}'"):
        check_address(address)


@pytest.mark.slow
def test_the_command_serves_until_it_is_stopped():
    command = [sys.executable, "-m", "kvision.data.service", "--dispatcher-port", "0", "--workers", "2"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = process.stdout.readline()
        assert line.startswith("tf.data service: dispatcher grpc://127.0.0.1:") and "2 worker(s)" in line
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        process.kill()
