"""The callbacks every training run gets.

TensorBoard for watching (scalars each epoch, the graph, the learning rate),
``BackupAndRestore`` so a killed run resumes at the epoch it reached, best and
last ``.keras`` checkpoints, a CSV of every epoch (kept across resumes, for the
training-curve plot), and early stopping when asked.
"""

import csv
import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import keras

from kvision.errors import ModelError


def run_paths(run_dir):
    """The files and folders of a run directory, by role."""
    run_dir = Path(run_dir)
    return {
        "logs": run_dir / "logs",
        "backup": run_dir / "backup",
        "best": run_dir / "checkpoints" / "best.keras",
        "last": run_dir / "checkpoints" / "last.keras",
        "history": run_dir / "history.csv",
    }


class LearningRateLogger(keras.callbacks.Callback):
    """Adds the optimizer's current learning rate to each epoch's logs.

    So the CSV history (and anything else reading the logs) has it, not only
    TensorBoard.
    """

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


def best_so_far(history_csv, monitor, mode="max"):
    """The best (highest, or lowest for ``mode="min"``) ``monitor`` value logged in ``history_csv``, or None.

    A resumed run hands it to ``ModelCheckpoint`` so that the best checkpoint of
    the epochs before the interruption is only replaced by a better one.
    """
    if not Path(history_csv).exists():
        return None
    with open(history_csv, newline="") as f:
        values = [float(row[monitor]) for row in csv.DictReader(f) if row.get(monitor) not in (None, "", "NA")]
    values = [v for v in values if not math.isnan(v)]
    return (max if mode == "max" else min)(values) if values else None


def completed_epochs(run_dir):
    """Epochs a run directory's training has finished, by its epoch log (0 if none).

    A run whose backup is gone finished ``fit``; its count is the highest
    epoch logged. While a backup exists the run was interrupted and resumes.
    """
    paths = run_paths(run_dir)
    if paths["backup"].exists() or not paths["history"].exists():
        return 0
    with open(paths["history"], newline="") as f:
        epochs = [int(row["epoch"]) for row in csv.DictReader(f) if row.get("epoch", "").isdigit()]
    return max(epochs) + 1 if epochs else 0


class SharedBackupAndRestore(keras.callbacks.BackupAndRestore):
    """``BackupAndRestore`` whose backup directory all workers of a job share.

    Every worker restores from ``backup_dir``; saves go to ``save_dir``: the
    same directory on the chief, a scratch directory on other workers (they
    run the same saving code, but their copy is not kept). A save is atomic:
    the weights go to a new file, then ``training_metadata.json``, which names
    that file and the epoch, is replaced by one rename, so a process killed
    mid-save leaves the previous backup whole. ``save_dir`` is removed when
    training ends.
    """

    def __init__(self, backup_dir, save_dir=None):
        super().__init__(str(backup_dir))
        self.save_dir = Path(save_dir or backup_dir)

    def _load_model(self):
        metadata = Path(self._training_metadata_path)
        if metadata.exists():
            weights = Path(self.backup_dir) / json.loads(metadata.read_text()).get("weights", "latest.weights.h5")
            if not weights.exists():
                raise ModelError(f"The backup in {self.backup_dir} is incomplete: {metadata.name} names {weights.name}, "
                                 "which is missing. Delete the backup directory to start the run afresh")
            self._weights_path = str(weights)
        super()._load_model()

    def _save_model(self):
        self.save_dir.mkdir(parents=True, exist_ok=True)
        name = f"epoch{self._current_epoch:05d}-batch{self._last_batch_seen:07d}.weights.h5"
        self.model.save_weights(str(self.save_dir / name), overwrite=True)
        metadata = {"epoch": self._current_epoch, "batch": self._last_batch_seen, "weights": name}
        fd, tmp = tempfile.mkstemp(dir=self.save_dir, prefix=".training_metadata.")
        with os.fdopen(fd, "w") as f:
            json.dump(metadata, f)
        os.replace(tmp, self.save_dir / "training_metadata.json")
        for old in self.save_dir.glob("*.weights.h5"):
            if old.name != name:
                old.unlink()

    def on_train_end(self, logs=None):
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


def make_callbacks(run_dir, out_dir=None, *, monitor="val_accuracy", mode="max", early_stopping_patience=None):
    """Callbacks for ``model.fit`` and the path of the best checkpoint.

    Files go to ``out_dir`` (default ``run_dir``): on a non-chief worker of a
    multi-worker job, a scratch directory (``kvision.train.worker_dir``), so
    only the chief's logs and checkpoints are kept. Every worker resumes from
    the backup in ``run_dir``.
    """
    out = run_paths(out_dir or run_dir)
    backup = run_paths(run_dir)["backup"]
    out["best"].parent.mkdir(parents=True, exist_ok=True)
    if not backup.exists():
        # A fresh run (nothing to resume): start the epoch log anew.
        out["history"].unlink(missing_ok=True)
    callbacks = [
        LearningRateLogger(),
        # Before the backup, so a resumed run at worst repeats a row, never drops one.
        keras.callbacks.CSVLogger(str(out["history"]), append=True),
        SharedBackupAndRestore(backup, out["backup"]),
        keras.callbacks.TensorBoard(str(out["logs"]), write_graph=True, update_freq="epoch"),
        NetworkCheckpoint(
            str(out["best"]),
            monitor=monitor,
            mode=mode,
            save_best_only=True,
            initial_value_threshold=best_so_far(out["history"], monitor, mode),
        ),
        NetworkCheckpoint(str(out["last"])),
    ]
    if early_stopping_patience:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=monitor, mode=mode, patience=early_stopping_patience, restore_best_weights=True
            )
        )
    return callbacks, out["best"]
