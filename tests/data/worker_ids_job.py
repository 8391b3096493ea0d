"""Record which examples one training epoch of the engine's input gives each worker: ``worker_ids_job.py DATA OUT``.

Run under ``kvision.launch --workers 2``: every worker builds the engine's
streamed training input (``kvision.train.engine.stream_inputs``) over the
TFRecord shards in ``DATA/tfrecord`` and the image folder ``DATA/folder``,
takes one epoch of steps, and writes the labels it saw to
``OUT/<source>-worker<i>.json``. Each example's label is its own index, so
the labels are the examples. Needs the repository root on ``PYTHONPATH``.
"""

import json
import os
import sys
from pathlib import Path

from kvision.data import open_dataset
from kvision.train import get_strategy
from kvision.train.engine import stream_inputs

GLOBAL_BATCH = 8


def main(data_dir, out_dir):
    strategy = get_strategy()
    task = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    for source in ("tfrecord", "folder"):
        split = open_dataset(source, Path(data_dir) / source, validation=0).splits["train"]
        train, _ = stream_inputs(strategy, split, None, global_batch=GLOBAL_BATCH, image_shape=(8, 8, 1), seed=0,
                                 crop_padding=0, flip=False)
        batches = iter(train)
        seen = []
        for _ in range(split.count // GLOBAL_BATCH):  # one epoch, as fit counts it
            _, labels = next(batches)
            seen += [int(label) for local in strategy.experimental_local_results(labels) for label in local]
        (Path(out_dir) / f"{source}-worker{task}.json").write_text(json.dumps(seen))


if __name__ == "__main__":
    main(*sys.argv[1:])
