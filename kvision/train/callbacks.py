"""The callbacks every training run gets.

TensorBoard for watching (scalars each epoch, the graph, the learning rate),
``BackupAndRestore`` so a killed run resumes at the epoch it reached, best and
last ``.keras`` checkpoints, a CSV of every epoch (kept across resumes, for the
training-curve plot), and early stopping when asked.
"""

import csv
import math
from pathlib import Path

import keras

from kvision.train.strategy import writable_dir


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


def best_so_far(history_csv, monitor):
    """The highest ``monitor`` value logged in ``history_csv``, or None.

    A resumed run hands it to ``ModelCheckpoint`` so that the best checkpoint of
    the epochs before the interruption is only replaced by a better one.
    """
    if not Path(history_csv).exists():
        return None
    with open(history_csv, newline="") as f:
        values = [float(row[monitor]) for row in csv.DictReader(f) if row.get(monitor) not in (None, "", "NA")]
    values = [v for v in values if not math.isnan(v)]
    return max(values) if values else None


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


def make_callbacks(run_dir, *, monitor="val_accuracy", early_stopping_patience=None):
    """Callbacks for ``model.fit`` and the path of the best checkpoint.

    On a non-chief worker of a multi-worker job every file goes to a temporary
    directory, so only the chief's logs and checkpoints are kept.
    """
    out = run_paths(writable_dir(str(run_dir)))
    out["backup"] = run_paths(run_dir)["backup"]  # BackupAndRestore handles non-chief workers itself.
    out["best"].parent.mkdir(parents=True, exist_ok=True)
    if not out["backup"].exists():
        # A fresh run (nothing to resume): start the epoch log anew.
        out["history"].unlink(missing_ok=True)
    callbacks = [
        LearningRateLogger(),
        # Before the backup, so a resumed run at worst repeats a row, never drops one.
        keras.callbacks.CSVLogger(str(out["history"]), append=True),
        keras.callbacks.BackupAndRestore(str(out["backup"]), double_checkpoint=True),
        keras.callbacks.TensorBoard(str(out["logs"]), write_graph=True, update_freq="epoch"),
        keras.callbacks.ModelCheckpoint(
            str(out["best"]),
            monitor=monitor,
            mode="max",
            save_best_only=True,
            initial_value_threshold=best_so_far(out["history"], monitor),
        ),
        keras.callbacks.ModelCheckpoint(str(out["last"])),
    ]
    if early_stopping_patience:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=monitor, mode="max", patience=early_stopping_patience, restore_best_weights=True
            )
        )
    return callbacks, out["best"]
