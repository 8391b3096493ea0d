"""``python -m kvision.launch``: real MultiWorkerMirroredStrategy jobs of two processes on 127.0.0.1."""

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf

import kvision
from kvision import launch
from tests.data.writers import write_idx_dataset
from tests.helpers import quadrant_examples

ROOT = Path(__file__).resolve().parents[1]
JOB = ROOT / "tests" / "train" / "multi_worker_job.py"
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}


def saved(path):
    with np.load(path) as f:
        return [f[k] for k in f.files if k.startswith("arr_")], f["loss"], int(f["replicas"])


def test_tf_configs_name_every_worker_on_loopback():
    configs = [json.loads(c) for c in launch.tf_configs([2001, 2002])]
    assert configs[1] == {"cluster": {"worker": ["127.0.0.1:2001", "127.0.0.1:2002"]}, "task": {"type": "worker", "index": 1}}
    assert len(set(launch.free_ports(3))) == 3


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """One two-worker job of ``multi_worker_job.py`` and, beside it, the same script in one process.

    The job trains the three engines and records the examples one epoch of
    streamed input gives each worker: TFRecord shards (whole shards per
    worker) and an image folder (files per worker), 32 one-example classes
    (label i is example i). Returns the job's and the lone process's output
    folders, the job's output and the worker scratch directories it left.
    """
    from kvision.data import ImageDataset
    from kvision.data.tfrecord import write_tfrecords
    from tests.data.streams import write_folder

    root = tmp_path_factory.mktemp("launch")
    count = 32
    images = np.random.default_rng(0).integers(0, 256, (count, 8, 8, 1), np.uint8)
    labels = np.arange(count)
    names = [f"c{i:02d}" for i in range(count)]
    write_tfrecords(ImageDataset("ids", names, (images, labels), (images[:1], labels[:1]), "test"),
                    root / "data" / "tfrecord", shards=4)
    for split in ("train", "test"):  # one image per class folder: its class index is unique too
        write_folder(root / "data" / "folder" / split, images, labels, fmt="png")
    for folder in ("two", "one", "tmp"):
        (root / folder).mkdir()
    run = dict(cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # The job's own temporary folder: worker 1's scratch directories go there, apart from other jobs'.
    two = subprocess.Popen([sys.executable, "-m", "kvision.launch", "--workers", "2", "--", str(JOB), str(root / "two"),
                            str(root / "data")], **{**run, "env": {**ENV, "TMPDIR": str(root / "tmp")}})
    one = subprocess.Popen([sys.executable, str(JOB), str(root / "one")], **run)
    two_out, one_out = two.communicate(timeout=600)[0], one.communicate(timeout=600)[0]
    assert two.returncode == 0, two_out[-3000:]
    assert one.returncode == 0, one_out[-3000:]
    left = list((root / "tmp").glob("kvision-worker-*"))
    return SimpleNamespace(two=root / "two", one=root / "one", output=two_out, scratch_left=left, count=count)


@pytest.mark.slow
def test_two_workers_train_identically_and_match_one_process(job):
    """Classifier, seq2seq and GAN engines: the workers hold one model, the one a single process trains."""
    assert "launch: worker 1 is pid" in job.output
    # Per-replica token means: seq2seq replicas holding different numbers of real
    # (unpadded) target tokens weigh them slightly differently from one device.
    tolerance = {"classifier": 1e-5, "gan": 1e-5, "seq2seq": 1e-3}
    for engine, rtol in tolerance.items():
        w0, loss0, replicas = saved(job.two / f"{engine}-worker0.npz")
        w1, loss1, _ = saved(job.two / f"{engine}-worker1.npz")
        single, single_loss, single_replicas = saved(job.one / f"{engine}-worker0.npz")
        assert (replicas, single_replicas) == (2, 1)
        for a, b in zip(w0, w1):
            np.testing.assert_array_equal(a, b, err_msg=f"{engine}: the workers' weights differ")
        np.testing.assert_array_equal(loss0, loss1)
        np.testing.assert_allclose(loss0, single_loss, rtol=rtol, err_msg=f"{engine}: loss differs from one process")
        if engine != "seq2seq":
            for a, c in zip(w0, single):
                np.testing.assert_allclose(a, c, rtol=1e-4, atol=1e-6, err_msg=f"{engine}: weights differ from one process")
    assert sorted(p.name for p in (job.two / "classifier").iterdir()) == ["checkpoints", "history.csv", "logs"]
    assert not job.scratch_left, "worker 1's scratch directories are removed"


@pytest.mark.slow
def test_one_epoch_of_streamed_input_gives_every_example_to_exactly_one_worker(job):
    """TFRecord shards (whole shards per worker) and an image folder (files per worker) under two real workers."""
    for source in ("tfrecord", "folder"):
        first, second = (json.loads((job.two / f"{source}-worker{i}.json").read_text()) for i in (0, 1))
        assert len(first) == len(second) == job.count // 2, source
        assert sorted(first + second) == list(range(job.count)), f"{source}: every example once across the workers"


@pytest.mark.slow
def test_a_worker_killed_mid_epoch_resumes_at_the_next_epoch(tmp_path):
    """SIGKILL worker 1 during epoch 2 of 2; the restarted job runs epoch 2 only and exports."""
    data = write_idx_dataset(tmp_path / "data", train_count=192, test_count=16, examples=quadrant_examples).path
    command = [
        sys.executable, "-m", "kvision.launch", "--workers", "2", "--max-restarts", "1", "--",
        str(ROOT / "recipes" / "fashion_mnist.py"), "--data-dir", str(data), "--epochs", "2", "--batch-size", "16",
        "--validation-size", "32", "--lr", "0.05", "--run-dir", str(tmp_path / "run"),
        "--export-dir", str(tmp_path / "exports"), "--version", "1", "--tflite", "",
    ]
    job = subprocess.Popen(command, cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines, pids, killed = [], {}, False
    for line in job.stdout:
        lines.append(line)
        if line.startswith("launch: worker"):
            pids[int(line.split()[2])] = int(line.split()[-1])
        # The chief starts epoch 2 only after its backup of epoch 1 is written.
        if not killed and line.startswith("[worker 0] Epoch 2/2"):
            os.kill(pids[1], signal.SIGKILL)
            killed = True
    job.wait(timeout=60)
    output = "".join(lines)
    assert job.returncode == 0, output[-4000:]
    assert killed and "restarting the job (1/1)" in output
    second = output[output.index("restarting the job"):]
    epochs = [line.split()[-1] for line in second.splitlines() if line.startswith("[worker 0] Epoch ")]
    assert epochs == ["2/2"], "resumed at the epoch after the last finished one"
    with open(tmp_path / "run" / "history.csv", newline="") as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["0", "1"], "no epoch lost or repeated"
    assert not (tmp_path / "run" / "backup").exists()
    export = tmp_path / "exports" / "fashion_mnist_cnn_fast" / "1"
    assert (export / "BLESSED").exists() and (export / "saved_model.pb").exists()
    chief = [line.removeprefix("[worker 0] ") for line in second.splitlines() if line.startswith("[worker 0] ")]
    start = chief.index("{")
    summary = json.loads("\n".join(chief[start:chief.index("}", start) + 1]))
    assert summary["saved_model"] == str(export) and summary["blessed"] is True
    serving = tf.saved_model.load(str(export)).signatures["serve_images"]
    images = np.random.default_rng(0).integers(0, 255, (4, 28, 28, 1)).astype("uint8")
    best = kvision.load_model(tmp_path / "run" / "checkpoints" / "best.keras")  # kvision's layers registered
    plain, mirrored = (best.predict(x.astype("float32"), verbose=0) for x in (images, images[:, :, ::-1]))
    np.testing.assert_allclose(serving(images=tf.constant(images))["logits"], (plain + mirrored) / 2, atol=1e-4)


@pytest.mark.slow
def test_a_failing_worker_stops_the_job(tmp_path):
    script = tmp_path / "fail.py"
    script.write_text("import json, os, sys, time\n"
                      "index = json.loads(os.environ['TF_CONFIG'])['task']['index']\n"
                      "print('started', flush=True)\n"
                      "sys.exit(3) if index == 1 else time.sleep(120)\n")
    done = subprocess.run([sys.executable, "-m", "kvision.launch", "--workers", "2", "--max-restarts", "1", str(script)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 3
    assert done.stdout.count("[worker 1] started") == 2  # the first run and one restart
    assert "restarting the job (1/1)" in done.stderr


def test_bad_arguments(tmp_path):
    with pytest.raises(SystemExit):
        launch.main(["--workers", "0", str(JOB)])
    with pytest.raises(SystemExit):
        launch.main([str(tmp_path / "missing.py")])
