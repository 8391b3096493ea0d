"""push_version's edges with a stand-in artifact: taken versions, models.config, fsync, disk errors, the serving check."""

import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import kvision.export.push as push
from kvision.export import saved_model, verify, versions

ROOT = Path(__file__).resolve().parents[2]
NOW = 1_800_000_000


def write_and_verify(staging):
    """A stand-in for an exporter's artifact: two files in a subdirectory tree, one passing check."""
    (staging / "variables").mkdir(parents=True)
    (staging / "saved_model.pb").write_bytes(b"graph")
    (staging / "variables" / "variables.index").write_bytes(b"index")
    evaluation = {"model_summary": {"name": "m", "parameters": 1}, "signatures": {}, "sizes_bytes": {},
                  "latency_ms_batch1": {}}
    return evaluation, [verify.Check("accuracy", 1.0, ">=", 0.5)]


def push_version(base, work=write_and_verify, **options):
    return push.push_version(base, "m", work, verbose=False, **options)


def recorded_version(path):
    """The version evaluation.json and MODEL_CARD.md of a published directory give."""
    version = json.loads((path / "evaluation.json").read_text())["version"]
    assert (path / "MODEL_CARD.md").read_text().startswith(f"# m — version {version}\n")
    return version


@pytest.fixture
def frozen_clock(monkeypatch):
    monkeypatch.setattr(saved_model.time, "time", lambda: NOW + 0.5)


def test_a_default_version_taken_this_second_becomes_the_next_integer(tmp_path, frozen_clock):
    first, second = push_version(tmp_path), push_version(tmp_path)
    assert (first.version, second.version) == (NOW, NOW + 1)
    assert versions(tmp_path / "m") == [NOW, NOW + 1]
    assert [recorded_version(r.path) for r in (first, second)] == [NOW, NOW + 1]


def test_a_version_published_meanwhile_moves_the_finished_work_to_the_next_integer(tmp_path, capsys):
    def published_meanwhile(staging):  # another exporter renames its version 5 into place during our work
        (tmp_path / "m" / "5").mkdir()
        (tmp_path / "m" / "5" / "saved_model.pb").write_bytes(b"theirs")
        return write_and_verify(staging)

    result = push_version(tmp_path, published_meanwhile, version=5)
    assert result.pushed and result.version == 6 and result.path == tmp_path / "m" / "6"
    assert recorded_version(result.path) == 6 and (result.path / "saved_model.pb").read_bytes() == b"graph"
    assert (tmp_path / "m" / "5" / "saved_model.pb").read_bytes() == b"theirs", "never overwritten"
    assert f"warning: version 5 was published by another export meanwhile; this one is {result.path}" in capsys.readouterr().err


def test_an_empty_directory_of_that_version_is_not_replaced(tmp_path):
    def made_meanwhile(staging):
        (tmp_path / "m" / "5").mkdir()
        return write_and_verify(staging)

    result = push_version(tmp_path, made_meanwhile, version=5)
    assert result.version == 6 and list((tmp_path / "m" / "5").iterdir()) == []


def test_concurrent_exporters_of_the_same_second_publish_distinct_versions(tmp_path, frozen_clock):
    both_staged = threading.Barrier(3)

    def racing(staging):  # both pick NOW before either publishes
        evaluation = write_and_verify(staging)
        both_staged.wait(timeout=30)
        return evaluation

    results = []
    threads = [threading.Thread(target=lambda: results.append(push_version(tmp_path, racing))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(r.version for r in results) == [NOW, NOW + 1, NOW + 2]
    assert versions(tmp_path / "m") == [NOW, NOW + 1, NOW + 2]
    assert all(recorded_version(r.path) == r.version for r in results)
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [str(NOW), str(NOW + 1), str(NOW + 2), "models.config"]


def test_a_models_config_failure_after_publishing_is_a_warning(tmp_path, monkeypatch, capsys):
    def disk_full(source, target):
        raise OSError(errno.ENOSPC, "No space left on device", str(target))

    monkeypatch.setattr(saved_model.os, "replace", disk_full)
    result = push_version(tmp_path, version=1)
    assert result.pushed and versions(tmp_path / "m") == [1] and recorded_version(result.path) == 1
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["1"], "no models.config temporary left"
    err = capsys.readouterr().err
    assert err.startswith(f"warning: {result.path} is published, but") and "No space left on device" in err


def test_everything_is_fsynced_before_the_publishing_rename_and_the_folder_after(tmp_path, monkeypatch):
    events = []
    real_fsync, real_rename = os.fsync, os.rename

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def rename(source, target):
        events.append(("rename", str(source)))
        real_rename(source, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "rename", rename)
    result = push_version(tmp_path, version=1)
    (renamed,) = [i for i, (kind, _) in enumerate(events) if kind == "rename"]
    staging = events[renamed][1]
    synced_before = {path for kind, path in events[:renamed] if kind == "fsync"}
    published = {p.relative_to(result.path) for p in result.path.rglob("*")}
    assert published == {Path(n) for n in ("saved_model.pb", "variables", "variables/variables.index", "BLESSED",
                                           "evaluation.json", "MODEL_CARD.md")}
    assert {str(Path(staging) / p) for p in published} | {staging} <= synced_before
    assert ("fsync", str(tmp_path / "m")) in events[renamed + 1:], "the new name made durable"


def test_a_write_error_without_a_path_names_the_staging_directory(tmp_path):
    def disk_full(staging):
        write_and_verify(staging)
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match=r"\[Errno 28\] No space left on device: '.*/m/\.tmp-7\.\d+-") as caught:
        push_version(tmp_path, disk_full, version=7)
    assert not Path(caught.value.filename).exists() and os.listdir(tmp_path / "m") == []


def blocking_check(tmp_path):
    """A serving check that reports its pid and directory, then blocks."""
    script = tmp_path / "block.py"
    report = tmp_path / "child.json"
    script.write_text(
        "import json, os, time\n"
        f"open({str(report)!r} + '.tmp', 'w').write(json.dumps([os.getpid(), os.getcwd()]))\n"
        f"os.replace({str(report)!r} + '.tmp', {str(report)!r})\n"
        "time.sleep(120)\n"
    )
    return script, report


def running(pid):
    """Whether ``pid`` runs (a zombie left to a non-reaping init does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in "ZX"
    except FileNotFoundError:
        return False


def wait_for(condition, seconds):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.1)
    return condition()


def test_a_serving_check_that_hangs_is_killed_with_its_directory(tmp_path, monkeypatch):
    script, report = blocking_check(tmp_path)
    monkeypatch.setattr(verify, "SERVING_CHECK", script)
    monkeypatch.setattr(verify, "read_warmup", lambda path: [])
    with pytest.raises(verify.ServingCheckError, match="no answer within 3 s"):
        verify.serve_in_fresh_process(tmp_path, [], "m", timeout=3)
    pid, check_dir = json.loads(report.read_text())
    assert wait_for(lambda: not running(pid), 5) and not Path(check_dir).exists()


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_the_serving_check_dies_with_a_killed_exporter_and_its_directory_is_cleaned(tmp_path):
    script, report = blocking_check(tmp_path)
    temp = tmp_path / "tmp"
    temp.mkdir()
    exporter = subprocess.Popen(
        [sys.executable, "-c", "import sys; from pathlib import Path; import kvision.export.verify as verify\n"
         "verify.SERVING_CHECK, verify.read_warmup = Path(sys.argv[1]), lambda path: []\n"
         "verify.serve_in_fresh_process(sys.argv[2], [], 'm')\n", str(script), str(tmp_path)],
        cwd=ROOT, env={**os.environ, "TMPDIR": str(temp)}, stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_for(report.exists, 120), "the serving check started"
        pid, check_dir = json.loads(report.read_text())
        exporter.send_signal(signal.SIGKILL)
        exporter.wait(timeout=30)
        assert wait_for(lambda: not running(pid), 5), "the check died with its exporter"
        assert Path(check_dir).parent == temp and Path(check_dir).is_dir(), "a SIGKILLed exporter cleans nothing"
        push.clean_stale_staging(tmp_path / "m", temp_dir=temp)
        assert list(temp.iterdir()) == []
    finally:
        exporter.kill()
        if report.exists() and running(pid := json.loads(report.read_text())[0]):
            os.kill(pid, signal.SIGKILL)
