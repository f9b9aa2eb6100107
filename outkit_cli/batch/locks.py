"""Locks that keep two batch runs from sending the same rows.

A run holds two exclusive locks (flock) from start to end: its journal's (batch.journal)
and its input file's. The journal lock alone let two runs on one file with different
journals (`--journal j1` and `--journal j2`, or the file through a symlink, whose default
journal is named after the path typed) both send every row. The input lock is keyed by the
file's identity (device and inode), which every path to the file shares; it lives in a
private lock file in the batch state directory, never in the input's directory (which may
be shared). Stdin has no identity to key on: its journal lock alone covers it.

Lock files are never deleted: removing a flock'd file lets a third run lock a new inode
at the same path while the second still holds the old one.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path

from outkit_cli.errors import UsageError
from outkit_cli.fsutil import ensure_private_dir, open_private


def take_lock(fd: int, what: str, wait_lock: float, holder: Callable[[], str]) -> None:
    """Lock the open file `fd` exclusively (flock), waiting up to `wait_lock` seconds.

    Args:
        fd: the open lock file.
        what: the locked thing as the error names it ("batch journal PATH").
        wait_lock: seconds to wait for another run to finish (0: fail at once).
        holder: names the process that holds the lock ("process 4242"); called only when
            the lock is not taken.

    Raises:
        UsageError: (exit 2) another run holds the lock after `wait_lock` seconds.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, as before
        return
    deadline = time.monotonic() + wait_lock
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        time.sleep(min(0.05, remaining))
    waited = f" after waiting {wait_lock:g} s" if wait_lock else ""
    raise UsageError(
        f"{what} is in use by another run ({holder()}){waited}: it is "
        "sending this batch; let it finish, or pass --wait-lock SECONDS to wait for it"
    )


def lock_dir() -> Path:
    """The directory of input locks (created 0700): STATE/locks, where STATE is the
    platform's user state directory for outkit (platformdirs)."""
    import platformdirs

    state = platformdirs.user_state_path("outkit")
    ensure_private_dir(state)
    return ensure_private_dir(state / "locks")


class InputLock:
    """The lock of one batch input file, held from construction to close(). The holder's
    process id is written in the lock file so that a second run can name it.

    Raises UsageError (exit 2) when the lock file cannot be opened (a symlink or another
    user's file in its place, an unwritable state directory) or another run holds it."""

    def __init__(self, name: str, file_id: tuple[int, int], *, wait_lock: float = 0.0) -> None:
        dev, ino = file_id
        try:
            self.path = lock_dir() / f"input-{dev:x}-{ino:x}.lock"
            fd = open_private(self.path, write=True)
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            raise UsageError(f"cannot lock batch file {name}: {where}{exc.strerror}") from None
        try:
            take_lock(fd, f"batch file {name}", wait_lock, lambda: _holder(fd))
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())  # O_APPEND: at offset 0, just emptied
        except OSError as exc:
            os.close(fd)
            raise UsageError(f"cannot lock batch file {name}: {exc.strerror}") from None
        except BaseException:
            os.close(fd)
            raise
        self._fd: int | None = fd

    def close(self) -> None:
        if self._fd is None:
            return
        # empty it while still held: a later waiter must not name a process that is gone
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        os.close(self._fd)
        self._fd = None


def _holder(fd: int) -> str:
    """The process id in the lock file. The holder writes it just after taking the lock:
    a run that started at the same moment gives it a second to appear."""
    deadline = time.monotonic() + 1.0
    while True:
        pid = None
        with contextlib.suppress(OSError, ValueError):
            pid = int(os.pread(fd, 32, 0).decode("ascii").strip())
        if pid is not None or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return f"process {pid}" if pid is not None else "a process that is just starting"
