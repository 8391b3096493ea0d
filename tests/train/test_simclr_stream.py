"""SimCLR on a streamed image folder: steps from its count, a finished run loaded, bad images, errors.

Its run on 2 replicas shares the two-replica process of tests/train/test_simclr.py.
"""

import csv
import re

import keras
import numpy as np
import pytest

from kvision.data.folder import open_folder
from kvision.errors import DataError, ModelError
from kvision.train.simclr import fit_simclr
from tests.data.streams import CORRUPT, write_folder
from tests.helpers import quadrant_images
from tests.train.test_engine_streams import CountSteps
from tests.train.test_simclr import IMAGES, small_encoder

SHAPE = (16, 16, 1)
COMMON = dict(image_shape=SHAPE, batch_size=10, learning_rate=3e-3, seed=1, verbose=0)


def streamed_folder(root, count=24):
    """A ``train/``, ``test/`` PNG folder of ``count`` (and 4) 16×16 quadrant images: its training split, its files."""
    paths = write_folder(root / "train", *quadrant_images(count, seed=1), fmt="png")
    write_folder(root / "test", *quadrant_images(4, seed=2), fmt="png")
    return open_folder(root).splits["train"], paths


def test_a_streamed_folder_trains_count_over_batch_steps_and_a_finished_run_loads(tmp_path):
    split, _ = streamed_folder(tmp_path / "data")
    assert split.count == 24
    run_dir = tmp_path / "run"
    counter = CountSteps()
    result = fit_simclr(small_encoder, split, run_dir=run_dir, epochs=2, callbacks=[counter], **COMMON)
    assert counter.steps == [24 // 10] * 2, "the last partial batch of each epoch is dropped"
    assert int(counter.model.optimizer.iterations.numpy()) == 2 * (24 // 10)
    with open(run_dir / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(row["epoch"]) for row in rows] == [0, 1]
    losses = result.history["loss"]
    assert len(losses) == 2 and np.all(np.isfinite(losses)) and min(losses) > 0
    keras.utils.set_random_seed(1)
    initial = small_encoder().get_weights()
    assert any(not np.array_equal(a, b) for a, b in zip(initial, result.model.get_weights())), "the encoder trained"

    again = fit_simclr(small_encoder, split, run_dir=run_dir, epochs=2, **COMMON)
    assert again.history == {}, "a finished run is loaded, not trained again"
    for a, b in zip(again.model.get_weights(), result.model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_bad_image_stops_pretraining_naming_its_file(tmp_path):
    split, paths = streamed_folder(tmp_path / "data")
    paths[5].write_bytes(CORRUPT)
    with pytest.raises(DataError, match=rf"^{re.escape(str(paths[5]))}: expected a JPEG, PNG, GIF or BMP image"):
        fit_simclr(small_encoder, split, run_dir=tmp_path / "run", epochs=1, **COMMON)

    counter = CountSteps()
    result = fit_simclr(small_encoder, split, run_dir=tmp_path / "skipping", epochs=1, skip_bad_images=True,
                        callbacks=[counter], **COMMON)
    assert counter.steps == [2] and np.isfinite(result.history["loss"][0]), "23 good images still make 2 batches"


def test_a_tf_data_service_makes_the_views_of_inception_crops(tmp_path):
    from kvision.data.service import LocalService

    split, _ = streamed_folder(tmp_path / "data")
    service = LocalService(workers=1)
    try:
        counter = CountSteps()
        result = fit_simclr(small_encoder, split, run_dir=tmp_path / "run", epochs=1, crop="inception",
                            crop_scale=(0.5, 1.0), data_service=service.address, callbacks=[counter], **COMMON)
    finally:
        service.stop()
    assert counter.steps == [2] and np.isfinite(result.history["loss"][0])


@pytest.mark.parametrize("image_shape", [None, (16, 16), (16, 16, 0)])
def test_a_stream_needs_the_image_shape(tmp_path, image_shape):
    split, _ = streamed_folder(tmp_path / "data")
    with pytest.raises(ModelError, match=re.escape(
            "A streamed split needs image_shape=(height, width, channels), the encoder's input. "
            f"Received: image_shape={image_shape!r}")):
        fit_simclr(small_encoder, split, run_dir=tmp_path / "run", epochs=1, **{**COMMON, "image_shape": image_shape})
    assert not (tmp_path / "run").exists()


def test_a_global_batch_larger_than_the_stream_is_refused(tmp_path):
    split, _ = streamed_folder(tmp_path / "data")
    with pytest.raises(ModelError, match="at least one global batch of 32 examples. Received: 24 examples"):
        fit_simclr(small_encoder, split, run_dir=tmp_path / "run", epochs=1, **{**COMMON, "batch_size": 32})


def test_stream_options_are_refused_for_arrays(tmp_path):
    with pytest.raises(DataError, match="Expected a streamed training split for crop='inception'. Received: arrays"):
        fit_simclr(small_encoder, IMAGES, run_dir=tmp_path, epochs=1, crop="inception")
    with pytest.raises(ModelError, match=re.escape("image_shape must be the images' (height, width, channels). "
                                                   "Received: image_shape=(32, 32, 1), images=(64, 16, 16, 1)")):
        fit_simclr(small_encoder, IMAGES, run_dir=tmp_path, epochs=1, image_shape=(32, 32, 1))
    assert not (tmp_path / "checkpoints").exists()
