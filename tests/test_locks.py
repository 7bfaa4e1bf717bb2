"""One process at a time per directory (dispersion_score.locks), and its use by the trainer (issue 9, item 8).

The holders are real processes (a Python child that takes the lock and waits); a killed holder is killed with
SIGKILL, the case where no clean-up code runs.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from dataset.locations import REPO_ROOT
from dispersion_score.locks import LOCK_NAME, DirectoryLockedError, directory_lock

_HOLDER = textwrap.dedent(
    """
    import sys, time
    from dispersion_score.locks import directory_lock
    with directory_lock(sys.argv[1], what="test folder"):
        print("locked", flush=True)
        time.sleep(60)
    """
)


def _start_holder(directory: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(directory)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert process.stdout.readline().strip() == "locked"
    return process


def test_second_process_is_refused_with_the_holders_pid_host_and_start(tmp_path):
    holder = _start_holder(tmp_path / "run")
    try:
        with pytest.raises(DirectoryLockedError) as refused:
            with directory_lock(tmp_path / "run", what="training run"):
                pytest.fail("a second holder got the lock")
        message = str(refused.value)
        assert f"pid {holder.pid}" in message and socket.gethostname() in message
        assert "training run" in message and str(tmp_path / "run") in message
        started = refused.value.holder["started"]
        assert started[:4].isdigit() and "T" in started  # an ISO time
    finally:
        holder.kill()
        holder.wait()


def test_lock_of_a_killed_holder_is_taken_over(tmp_path, caplog):
    holder = _start_holder(tmp_path / "run")
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    # The killed holder's record is still in the lock file, but the kernel released its lock.
    assert json.loads((tmp_path / "run" / LOCK_NAME).read_text())["pid"] == holder.pid
    with directory_lock(tmp_path / "run", what="training run") as directory:
        record = json.loads((directory / LOCK_NAME).read_text())
        assert record["pid"] == os.getpid()
    assert f"pid {holder.pid}" in caplog.text and "no longer running" in caplog.text
    assert not (tmp_path / "run" / LOCK_NAME).exists(), "a clean release removes the lock file"


def test_lock_is_exclusive_within_one_process_and_free_after_release(tmp_path):
    with directory_lock(tmp_path / "d"):
        with pytest.raises(DirectoryLockedError, match=f"pid {os.getpid()}"):
            with directory_lock(tmp_path / "d"):
                pass
    with directory_lock(tmp_path / "d"):  # released: free again
        pass


def test_a_lock_file_deleted_under_a_waiting_process_does_not_let_two_in(tmp_path, monkeypatch):
    # Process B opened the lock file just before holder A released (and deleted) it; B's flock on the
    # deleted file then succeeds. B must notice and lock the file the name now leads to instead.
    import dispersion_score.locks as locks

    directory = tmp_path / "d"
    directory.mkdir()
    stale = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT)
    (directory / LOCK_NAME).unlink()  # what A's release does
    real_open = os.open
    calls = []

    def open_stale_first(path, flags, mode=0o777):
        calls.append(path)
        return os.dup(stale) if len(calls) == 1 else real_open(path, flags, mode)

    monkeypatch.setattr(locks.os, "open", open_stale_first)
    with directory_lock(directory):
        assert len(calls) == 2, "locked the deleted file without noticing"
        # The name leads to the file actually locked: a newcomer is refused.
        monkeypatch.setattr(locks.os, "open", real_open)
        with pytest.raises(DirectoryLockedError):
            with directory_lock(directory):
                pass
    os.close(stale)


def test_a_file_is_not_a_directory(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file"):
        with directory_lock(tmp_path / "f"):
            pass


def test_lock_module_does_not_import_torch():
    # The dataset builder (and its worker processes) use the lock and the atomic writes without torch.
    code = "import sys, dispersion_score.locks, dispersion_score.atomic, dataset.synthetic.build; "
    code += "print('torch' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "False"


# --- the trainer -------------------------------------------------------------------------------------------

TOY = {
    "preset": "locktest",
    "seed": 1,
    "data": {
        "dataset": "toy",
        "root": ".",
        "train_file": "train:4",
        "val_file": "val:2",
        "num_points": 32,
        "image_size": 32,
    },
    "model": {"name": "psgn", "bottleneck": 8, "psgn": {"hidden": [8]}},
    "train": {"epochs": 1, "batch_size": 2, "milestones": []},
    "run": {"progress": False},
}


def test_second_training_on_the_same_run_directory_is_refused(tmp_path):
    from models.engine import train

    holder = _start_holder(tmp_path / "run")
    try:
        with pytest.raises(DirectoryLockedError, match=f"pid {holder.pid}"):
            train(TOY, tmp_path / "run")
        assert not (tmp_path / "run" / "metrics.jsonl").exists() and not (tmp_path / "run" / "config.yaml").exists()
    finally:
        holder.kill()
        holder.wait()
    train(TOY, tmp_path / "run")  # the holder is gone: the run starts
    epochs = [json.loads(line)["epoch"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1]


def test_train_script_reports_a_locked_run_in_one_line(tmp_path):
    import yaml

    (tmp_path / "toy.yaml").write_text(yaml.safe_dump(TOY))
    holder = _start_holder(tmp_path / "run")
    try:
        started = time.monotonic()
        out = subprocess.run(
            [
                sys.executable,
                str(REPO_ROOT / "train_scripts" / "train.py"),
                "--config",
                str(tmp_path / "toy.yaml"),
                "--out",
                str(tmp_path / "run"),
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
            timeout=120,
        )
        assert time.monotonic() - started < 60
    finally:
        holder.kill()
        holder.wait()
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and f"pid {holder.pid}" in lines[0] and "Traceback" not in out.stderr
