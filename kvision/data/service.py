"""tf.data service: a training pipeline's preprocessing run by a dispatcher and its workers instead of the trainer.

    python -m kvision.data.service --dispatcher-port 5050 --workers 2     # a local service, for trying it
    python recipes/classification.py ... --data-service grpc://localhost:5050

TensorFlow's own distributed input engine (``tf.data.experimental.service``):
the trainer sends its pipeline's graph to the dispatcher, the workers read,
decode and augment, and batches come back over gRPC, so preprocessing scales
with input hosts rather than with the accelerator host's cores. In a real
deployment the dispatcher and the workers run on their own hosts or pods
(README, "Scaling out"); this module starts them on 127.0.0.1 for
development and tests. A pipeline sent to the service must be
serialisable: kvision's pipelines are (stateless ops, no Python functions).
"""

import argparse
import signal
import threading

import tensorflow as tf

from kvision.console import HelpFormatter
from kvision.errors import DataError

PROTOCOL = "grpc"
# Each worker produces every epoch whole ("parallel_epochs"): with one worker a training epoch holds each example
# once, as without the service; more workers give more epochs in parallel, as the training loop's `repeat` expects.
PROCESSING_MODE = "parallel_epochs"


def check_address(address):
    """``address`` if it is ``grpc://HOST:PORT``; else ``DataError`` (before any pipeline is built)."""
    scheme, _, rest = str(address).partition("://")
    host, _, port = rest.rpartition(":")
    if scheme != PROTOCOL or not host or not port.isdigit():
        raise DataError(
            f"Expected --data-service as grpc://HOST:PORT (a tf.data service dispatcher). Received: {address!r}"
        )
    return address


def distribute(dataset, address, *, job_name=None):
    """``dataset`` processed by the tf.data service at ``address`` (``grpc://HOST:PORT``).

    ``job_name`` shares one job between several trainers (each then gets
    part of the data); None gives this trainer its own job.
    """
    return dataset.apply(tf.data.experimental.service.distribute(
        processing_mode=PROCESSING_MODE, service=check_address(address), job_name=job_name,
    ))


class LocalService:
    """A dispatcher and ``workers`` workers in this process, listening on 127.0.0.1; ``address`` is the dispatcher's."""

    def __init__(self, *, dispatcher_port=0, workers=1):
        if workers < 1:
            raise DataError(f"Expected at least one tf.data service worker. Received: workers={workers}")
        self.dispatcher = tf.data.experimental.service.DispatchServer(
            tf.data.experimental.service.DispatcherConfig(port=dispatcher_port, protocol=PROTOCOL)
        )
        dispatcher_address = self.dispatcher.target.split("://")[1]
        self.workers = [
            tf.data.experimental.service.WorkerServer(tf.data.experimental.service.WorkerConfig(
                dispatcher_address=dispatcher_address, worker_address="127.0.0.1:%port%", protocol=PROTOCOL,
            ))
            for _ in range(workers)
        ]
        self.address = f"{PROTOCOL}://127.0.0.1:{dispatcher_address.rpartition(':')[2]}"

    def stop(self):
        for worker in self.workers:
            worker.stop()
        self.dispatcher.stop()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m kvision.data.service", description=__doc__,
                                     formatter_class=HelpFormatter)
    parser.add_argument("--dispatcher-port", type=int, default=5050,
                        help="dispatcher port on 127.0.0.1, 0 for any free one (default: 5050)")
    parser.add_argument("--workers", type=int, default=1, help="workers to start (default: 1)")
    args = parser.parse_args(argv)
    # A handler, not a blocked mask: TensorFlow's threads exist from its import on, and the kernel may deliver
    # SIGTERM to any of them; with a handler installed the process never dies of it, whichever thread gets it.
    stopping = threading.Event()
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, lambda signum, frame: stopping.set())
    service = LocalService(dispatcher_port=args.dispatcher_port, workers=args.workers)
    print(f"tf.data service: dispatcher {service.address}, {len(service.workers)} worker(s); Ctrl-C stops it",
          flush=True)
    try:
        while not stopping.is_set():
            stopping.wait(0.5)  # returns to the main thread's loop, where Python runs the handler
    finally:
        service.stop()


if __name__ == "__main__":
    main()
