"""Train with kvision's three engines for a few steps: ``python tests/train/multi_worker_job.py OUT_DIR [DATA_DIR]``.

Under ``kvision.launch`` (a ``TF_CONFIG`` naming several workers) every engine
runs under ``MultiWorkerMirroredStrategy``; alone, under a one-device
``MirroredStrategy`` (like the multi-worker run, Keras then peeks one batch to
build the model, so both see the same example order). The global batch is the
same either way. Each process saves its final weights and loss history to
``OUT_DIR/<engine>-worker<i>.npz``.

With ``DATA_DIR``, each worker of a multi-worker job also records which
examples one epoch of the engine's streamed training input gives it
(``record_streamed_labels``), in the same job: its strategy is already up.
Needs the repository root on ``PYTHONPATH``.
"""

import json
import os
import sys
from pathlib import Path

import numpy as np

from kvision.data import open_dataset
from kvision.data.text import CharacterVocabulary, WordPieceVocabulary
from kvision.models import build, build_rnn_seq2seq
from kvision.train import fit_classifier, fit_seq2seq, get_strategy
from kvision.train.engine import stream_inputs
from kvision.train.gan import fit_gan
from tests.helpers import quadrant_images, small_cnn

GLOBAL_BATCH = 16
PAIRS = [(w, " ".join(w.upper())) for w in ("ab", "ba", "abc", "cab", "bca", "cc", "a", "acb")] * 8
STREAM_BATCH = 8


def record_streamed_labels(strategy, task, data_dir, out_dir):
    """Write the labels one epoch of ``stream_inputs`` gives this worker to ``OUT/<source>-worker<task>.json``.

    Over the TFRecord shards in ``DATA/tfrecord`` and the image folder
    ``DATA/folder``; each example's label is its own index, so the labels
    are the examples.
    """
    for source in ("tfrecord", "folder"):
        split = open_dataset(source, Path(data_dir) / source, validation=0).splits["train"]
        train, _ = stream_inputs(strategy, split, None, global_batch=STREAM_BATCH, image_shape=(8, 8, 1), seed=0,
                                 crop_padding=0, flip=False)
        batches = iter(train)
        seen = []
        for _ in range(split.count // STREAM_BATCH):  # one epoch, as fit counts it
            _, labels = next(batches)
            seen += [int(label) for local in strategy.experimental_local_results(labels) for label in local]
        (out_dir / f"{source}-worker{task}.json").write_text(json.dumps(seen))


def main(out_dir, data_dir=None):
    out_dir = Path(out_dir)
    multi_worker = "TF_CONFIG" in os.environ
    strategy = get_strategy() if multi_worker else get_strategy(["/cpu:0"])
    task = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {}).get("index", 0)
    per_replica = GLOBAL_BATCH // strategy.num_replicas_in_sync
    common = dict(strategy=strategy, verbose=0)

    def save(engine, model, history):
        np.savez(out_dir / f"{engine}-worker{task}.npz", *[np.asarray(w) for w in model.get_weights()],
                 loss=np.asarray(history["loss"]), replicas=strategy.num_replicas_in_sync)

    classifier = fit_classifier(
        lambda: small_cnn(batch_norm=False, dropout=0.0, dense_dropout=0.0), quadrant_images(64, seed=1),
        quadrant_images(32, seed=2), run_dir=out_dir / "classifier", epochs=2, batch_size=per_replica,
        optimizer="sgd", learning_rate=0.05, schedule="constant", seed=3, figure_examples=0, **common,
    )
    save("classifier", classifier.model, classifier.history)

    source, target = CharacterVocabulary("abc", max_length=5), WordPieceVocabulary.from_symbols(["A B C"], max_length=5)
    seq2seq = fit_seq2seq(
        lambda: build_rnn_seq2seq(source.size, target.size, units=8, embedding_dim=4, num_layers=1),
        PAIRS, PAIRS[:16], source, target, run_dir=out_dir / "seq2seq", epochs=1, batch_size=GLOBAL_BATCH, seed=0,
        **common,
    )
    save("seq2seq", seq2seq.model, seq2seq.history)

    gan = fit_gan(
        lambda: build("dcgan_generator", (16, 16, 1), 4, latent_dim=8, filters=16),
        lambda: build("dcgan_discriminator", (16, 16, 1), 4, filters=8, dropout=0.0),
        quadrant_images(32, size=16), run_dir=out_dir / "gan", epochs=1, batch_size=per_replica, seed=0, **common,
    )
    save("gan", gan.gan, {"loss": gan.history["d_loss"] + gan.history["g_loss"]})

    if multi_worker and data_dir:
        record_streamed_labels(strategy, task, data_dir, out_dir)


if __name__ == "__main__":
    main(*sys.argv[1:])
