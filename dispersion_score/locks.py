"""One process at a time per directory: ``with directory_lock(run_dir, what="training run"): ...``.

A run folder, a dataset root or a sweep folder is owned by one process while it writes there; a second
process gets :class:`DirectoryLockedError` naming the holder (pid, host, start time, command).

Mechanism: ``fcntl.flock`` on ``<directory>/.lock``. The kernel releases the lock when the holder's last
file descriptor closes, including when the process is killed (SIGKILL, out of memory, a crashed node's
NFS lease running out), so a dead holder's lock is taken over with no guessing about whether a pid is
still alive, and no window in which two processes both believe they hold it. The lock file holds the
holder's record as JSON; a clean release deletes it (while still holding the lock), and a process that
locked a file which has meanwhile been deleted notices (the name no longer leads to it) and starts over,
so the deletion never lets two holders in. A file left by a killed holder is simply taken over.
Why not the ``filelock`` package: its Unix lock is the same ``flock``, but it truncates the lock file when
opening it, so the holder's identity would need a second file. ``flock`` works across hosts on NFSv4 and
on Lustre mounted with ``-o flock``; where the file system has no locks at all, a warning says so and the
work goes on unlocked.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import json
import logging
import os
import socket
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

LOCK_NAME = ".lock"
logger = logging.getLogger("dispersion_score.locks")

# flock errors that mean "this file system has no locks", not "someone else holds it".
_NO_LOCKING = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}


class DirectoryLockedError(RuntimeError):
    """Another running process owns the directory. ``holder`` is its record (pid, host, started, command)."""

    def __init__(self, message: str, holder: dict[str, Any]) -> None:
        super().__init__(message)
        self.holder = holder


def _record() -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": " ".join([os.path.basename(sys.argv[0] or "python"), *sys.argv[1:]])[:300],
    }


def _read_record(fd: int) -> dict[str, Any]:
    try:
        raw = os.pread(fd, 4096, 0)
        record = json.loads(raw.decode()) if raw.strip() else {}
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def describe_holder(record: dict[str, Any]) -> str:
    """``pid 123 on host h, started 2024-05-01T10:00:00+02:00 (train.py --out run)`` (or what is known)."""
    if not record:
        return "a process that has not yet written its pid"
    text = f"pid {record.get('pid', '?')} on host {record.get('host', '?')}, started {record.get('started', '?')}"
    return text + (f" ({record['command']})" if record.get("command") else "")


def _holder_of(fd: int) -> dict[str, Any]:
    # The holder writes its record right after taking the lock: wait briefly for it.
    record: dict[str, Any] = {}
    for _ in range(20):
        record = _read_record(fd)
        if record:
            break
        time.sleep(0.025)
    return record


@contextlib.contextmanager
def directory_lock(path: str | os.PathLike, *, what: str = "directory", wait: bool = False) -> Iterator[Path]:
    """Hold the lock of directory ``path`` (created if missing) for the duration of the ``with`` block.

    Args:
        path: the directory to own.
        what: what the directory is, for messages ("training run", "dataset root", "sweep", ...).
        wait: block until the holder releases it instead of raising (a shared cache that concurrent jobs
            fill: the second one waits, then finds the work done).

    Yields:
        ``path`` as a Path.

    Raises:
        DirectoryLockedError: another process (or another ``directory_lock`` of this process) holds it;
            the message names the holder's pid, host, start time and command.
        NotADirectoryError: ``path`` exists and is not a directory.

    A lock left by a process that has ended is free (the kernel released it): it is taken over, and the
    dead holder's record is logged at warning level.
    """
    directory = Path(path)
    if directory.exists() and not directory.is_dir():
        raise NotADirectoryError(f"{what} {directory} is a file, not a directory")
    directory.mkdir(parents=True, exist_ok=True)
    lock_file = directory / LOCK_NAME
    fd, locked = _open_and_lock(lock_file, directory, what, wait)
    try:
        if locked:
            previous = _read_record(fd)
            if previous:
                logger.warning(
                    "%s %s: taking over the lock of %s, which is no longer running",
                    what,
                    directory,
                    describe_holder(previous),
                )
            data = json.dumps(_record()).encode()
            os.pwrite(fd, data, 0)  # then cut the old tail: a reader never sees an empty file meanwhile
            os.ftruncate(fd, len(data))
            os.fsync(fd)
        try:
            yield directory
        finally:
            if locked:
                lock_file.unlink(missing_ok=True)  # while still holding it: see _open_and_lock
    finally:
        os.close(fd)  # releases the flock


def _open_and_lock(lock_file: Path, directory: Path, what: str, wait: bool = False) -> tuple[int, bool]:
    """Open ``lock_file`` (created if missing) and lock it; (fd, locked). The holder deletes the file when it
    releases, so a process may lock a file that was just deleted: the lock then counts only if the name still
    leads to the locked file, otherwise it starts over with the new file."""
    while True:
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o666)  # no O_TRUNC: the holder's record stays readable
        try:
            locked = _acquire(fd, lock_file, directory, what, wait)
            if not locked or _same_file(fd, lock_file):
                return fd, locked
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (opened.st_dev, opened.st_ino) == (on_disk.st_dev, on_disk.st_ino)


def _acquire(fd: int, lock_file: Path, directory: Path, what: str, wait: bool = False) -> bool:
    """True when locked, False when the file system cannot lock (warned); raises when someone holds it (or,
    with ``wait``, blocks until they release it)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        holder = _holder_of(fd)
        raise DirectoryLockedError(
            f"{what} {directory} is in use by {describe_holder(holder)}; wait for it to finish or stop it "
            f"(the lock, {lock_file}, is released automatically when that process ends)",
            holder,
        ) from None
    except OSError as error:
        if error.errno not in _NO_LOCKING:
            raise
        warnings.warn(
            f"{what} {directory}: the file system does not support locks ({error.strerror}); a second process "
            "writing here at the same time would not be detected",
            RuntimeWarning,
            stacklevel=3,
        )
        return False
