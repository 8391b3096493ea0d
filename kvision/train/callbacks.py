"""The callbacks every training run gets.

TensorBoard for watching (scalars each epoch, the learning rate, the
training time so far, the train
step's graph, the run's settings as HParams, the profiler when asked: see
``kvision.train.tensorboard``),
``BackupAndRestore`` so a killed run resumes at the epoch it reached, best and
last ``.keras`` checkpoints, a CSV of every epoch (kept across resumes, each
epoch once, for the training-curve plot), a ``checkpoints/finished.json``
marker once ``fit`` ends, and, when asked, early stopping and the weights of
the last epochs (for checkpoint averaging).
"""

import csv
import json
import math
import os
import shutil
import time
from pathlib import Path

import keras

from kvision.errors import ModelError
from kvision.train.records import write_json
from kvision.train.tensorboard import tensorboard_callbacks


def run_paths(run_dir):
    """The files and folders of a run directory, by role."""
    run_dir = Path(run_dir)
    return {
        "logs": run_dir / "logs",
        "backup": run_dir / "backup",
        "best": run_dir / "checkpoints" / "best.keras",
        "last": run_dir / "checkpoints" / "last.keras",
        "history": run_dir / "history.csv",
        "finished": run_dir / "checkpoints" / "finished.json",
        "epochs": run_dir / "checkpoints" / "epochs",
    }


def epoch_weights_path(folder, epoch):
    """The weights file of ``epoch`` (counted from 1) in ``folder``, as ``EpochWeights`` writes it."""
    return Path(folder) / f"epoch{epoch:04d}.weights.h5"


class LearningRateLogger(keras.callbacks.Callback):
    """Adds the optimizer's current learning rate to each epoch's logs.

    So the CSV history (and anything else reading the logs) has it, not only
    TensorBoard.
    """

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


class TrainingClock(keras.callbacks.Callback):
    """Adds ``train_seconds`` to each epoch's logs: wall seconds of training so far, across resumes.

    Counted from the start of ``fit`` (tracing, validation and callbacks
    included) and added to the last value the run's CSV history holds, so a
    resumed run's curve of accuracy against time goes on where it stopped (the
    interrupted epoch's lost seconds are not counted). Time to accuracy, the
    measure of DAWNBench and airbench, is read from history.csv.
    """

    def __init__(self, history_csv):
        super().__init__()
        self.history_csv = Path(history_csv)
        self.offset = self.start = 0.0

    def on_train_begin(self, logs=None):
        self.offset = last_logged(self.history_csv, "train_seconds") or 0.0
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["train_seconds"] = round(self.offset + time.perf_counter() - self.start, 3)


def logged_values(history_csv, column):
    """The numbers of ``column`` in a CSV history, in epoch order; "NA", empty and NaN cells left out."""
    if not Path(history_csv).exists():
        return []
    with open(history_csv, newline="") as f:
        values = [float(row[column]) for row in csv.DictReader(f) if row.get(column) not in (None, "", "NA")]
    return [v for v in values if not math.isnan(v)]


def last_logged(history_csv, column):
    """The last number of ``column`` in a CSV history, or None."""
    values = logged_values(history_csv, column)
    return values[-1] if values else None


def best_so_far(history_csv, monitor, mode="max"):
    """The best (highest, or lowest for ``mode="min"``) ``monitor`` value logged in ``history_csv``, or None.

    A resumed run hands it to ``ModelCheckpoint`` so that the best checkpoint of
    the epochs before the interruption is only replaced by a better one.
    """
    values = logged_values(history_csv, monitor)
    return (max if mode == "max" else min)(values) if values else None


def finished_epochs(run_dir):
    """Epochs of the finished training in ``run_dir`` by its ``finished.json``; 0 when it has not finished."""
    finished = run_paths(run_dir)["finished"]
    return json.loads(finished.read_text())["epochs"] if finished.exists() else 0


def start_history(backup_dir, history, finished):
    """Make a run's epoch log agree with the backup it resumes from, so it holds each epoch once.

    The backup is written before the epoch's CSV row: a run killed between the
    two lacks that row, which is written here from the backup's record of the
    epoch. Rows past the backup's epoch (left by a run killed after its row
    but before its backup) are dropped: those epochs run again. A fresh run
    (no backup) starts the log anew and forgets an earlier finish (``finished``).
    """
    metadata = Path(backup_dir) / "training_metadata.json"
    if not Path(backup_dir).exists():
        history.unlink(missing_ok=True)
        finished.unlink(missing_ok=True)
        return
    if not metadata.exists():
        return
    record = json.loads(metadata.read_text())
    done = record["epoch"]
    rows = []
    if history.exists():
        with open(history, newline="") as f:
            rows = list(csv.reader(f))
    kept = rows[:1] + [row for row in rows[1:] if row and row[0].isdigit() and int(row[0]) < done]
    if kept != rows:
        tmp = history.with_name(f".{history.name}.tmp")
        with open(tmp, "w", newline="") as f:
            csv.writer(f).writerows(kept)
        os.replace(tmp, history)  # a kill mid-write keeps the old log
    if record.get("logs") and not any(row[0] == str(done - 1) for row in kept[1:]):
        logger = keras.callbacks.CSVLogger(str(history), append=True)  # the header and format CSVLogger writes
        logger.on_train_begin()
        logger.on_epoch_end(done - 1, record["logs"])
        logger.on_train_end()


class SharedBackupAndRestore(keras.callbacks.BackupAndRestore):
    """``BackupAndRestore`` whose backup directory all workers of a job share.

    Every worker restores from ``backup_dir``; saves go to ``save_dir``: the
    same directory on the chief, a scratch directory on other workers (they
    run the same saving code, but their copy is not kept). A save is atomic:
    the weights go to a new file, then ``training_metadata.json``, which names
    that file and the epoch and holds the epoch's logs (``start_history``
    writes a row the CSV lacks from them), is replaced by one rename, so a
    process killed mid-save leaves the previous backup whole. When training
    ends, ``finished`` (``finished.json``: the epochs trained) is written
    before ``save_dir`` is removed, so a process killed in between leaves a
    finished run, not one that trains again.
    """

    def __init__(self, backup_dir, save_dir=None, *, finished):
        super().__init__(str(backup_dir))
        self.save_dir = Path(save_dir or backup_dir)
        self.finished = Path(finished)
        self._epoch_logs = {}

    def _load_model(self):
        metadata = Path(self._training_metadata_path)
        if metadata.exists():
            weights = Path(self.backup_dir) / json.loads(metadata.read_text()).get("weights", "latest.weights.h5")
            if not weights.exists():
                raise ModelError(f"The backup in {self.backup_dir} is incomplete: {metadata.name} names {weights.name}, "
                                 "which is missing. Delete the backup directory to start the run afresh")
            self._weights_path = str(weights)
            self._current_epoch = json.loads(metadata.read_text())["epoch"]  # what finished.json says if no epoch is left
        super()._load_model()

    def on_epoch_end(self, epoch, logs=None):
        self._epoch_logs = {key: value for key, value in (logs or {}).items() if isinstance(value, (int, float))}
        super().on_epoch_end(epoch, logs)

    def _save_model(self):
        self.save_dir.mkdir(parents=True, exist_ok=True)
        name = f"epoch{self._current_epoch:05d}-batch{self._last_batch_seen:07d}.weights.h5"
        self.model.save_weights(str(self.save_dir / name), overwrite=True)
        write_json(self.save_dir / "training_metadata.json",
                   {"epoch": self._current_epoch, "batch": self._last_batch_seen, "weights": name, "logs": self._epoch_logs})
        for old in self.save_dir.glob("*.weights.h5"):
            if old.name != name:
                old.unlink()

    def on_train_end(self, logs=None):
        self.finished.parent.mkdir(parents=True, exist_ok=True)
        write_json(self.finished, {"epochs": self._current_epoch})
        shutil.rmtree(self.save_dir, ignore_errors=True)


class NetworkCheckpoint(keras.callbacks.ModelCheckpoint):
    """``ModelCheckpoint`` that saves the network a training wrapper trains.

    A model with a custom ``train_step`` around a classifier (a ``Distiller``,
    ``AdversarialTraining``, ``SimCLR``) exposes it as ``.network``; the
    checkpoints hold that network alone, so they load, evaluate and export as
    any classifier does. A plain model is saved as it is.
    """

    def set_model(self, model):
        super().set_model(getattr(model, "network", model))


class EpochWeights(keras.callbacks.Callback):
    """Keeps the network's weights of the last ``keep`` epochs in ``folder`` (``epoch_weights_path``).

    Runs with the checkpoints, before the backup: an epoch whose file a killed
    run wrote but whose backup it did not is trained again and its file
    replaced. After each save the folder holds that epoch and the ``keep - 1``
    before it only: older files, and those of later epochs a killed run left,
    are removed. Saves the ``.network`` of a training wrapper, as
    ``NetworkCheckpoint`` does.
    """

    def __init__(self, folder, keep):
        super().__init__()
        self.folder = Path(folder)
        self.keep = keep

    def on_epoch_end(self, epoch, logs=None):
        self.folder.mkdir(parents=True, exist_ok=True)
        number = epoch + 1
        getattr(self.model, "network", self.model).save_weights(str(epoch_weights_path(self.folder, number)))
        kept = {epoch_weights_path(self.folder, n).name for n in range(number - self.keep + 1, number + 1)}
        for path in self.folder.glob("epoch*.weights.h5"):
            if path.name not in kept:
                path.unlink()


def make_callbacks(run_dir, out_dir=None, *, monitor="val_accuracy", mode="max", early_stopping_patience=None,
                   keep_epochs=0, input_spec=None, hparams=None, profile_batches=None):
    """Callbacks for ``model.fit`` and the path of the best checkpoint.

    Files go to ``out_dir`` (default ``run_dir``): on a non-chief worker of a
    multi-worker job, a scratch directory (``kvision.train.worker_dir``), so
    only the chief's logs and checkpoints are kept. Every worker resumes from
    the backup in ``run_dir``. With ``keep_epochs``, the weights of that many
    last epochs are kept in ``checkpoints/epochs/`` (``EpochWeights``).
    ``input_spec`` (of the training input: the op graph), ``hparams`` and
    ``profile_batches``: see ``kvision.train.tensorboard.tensorboard_callbacks``.
    """
    out = run_paths(out_dir or run_dir)
    backup = run_paths(run_dir)["backup"]
    out["best"].parent.mkdir(parents=True, exist_ok=True)
    start_history(backup, out["history"], out["finished"])
    callbacks = [
        LearningRateLogger(),
        TrainingClock(out["history"]),
        *tensorboard_callbacks(out["logs"], input_spec=input_spec, hparams=hparams, profile_batches=profile_batches),
        NetworkCheckpoint(
            str(out["best"]),
            monitor=monitor,
            mode=mode,
            save_best_only=True,
            initial_value_threshold=best_so_far(out["history"], monitor, mode),
        ),
        NetworkCheckpoint(str(out["last"])),
        *([EpochWeights(out["epochs"], keep_epochs)] if keep_epochs else []),
        # The checkpoints, then the backup, then the epoch's row (see start_history): an epoch the
        # backup holds is never run again, and history.csv has it once.
        SharedBackupAndRestore(backup, out["backup"], finished=out["finished"]),
        keras.callbacks.CSVLogger(str(out["history"]), append=True),
    ]
    if early_stopping_patience:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=monitor, mode=mode, patience=early_stopping_patience, restore_best_weights=True
            )
        )
    return callbacks, out["best"]
