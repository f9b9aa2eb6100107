"""Locks that keep two batch runs from sending the same rows.

A run holds three exclusive locks (flock) from start to end, always taken in this order
(so no two runs wait on each other): its input file's, its rows', and its journal's
(batch.journal). The journal lock alone let two runs on one file with different journals
(`--journal j1` and `--journal j2`, or the file through a symlink, whose default journal
is named after the path typed) both send every row. The input lock is keyed by the file's
identity (device and inode), which every path to the file shares.

The rows' lock is keyed by the batch's content: a hash over its rows' identities
(batch.identity.BatchKey), which are what the rows are sent as. Copies of a file in two
directories, a file an editor or `sed -i` replaced (a new inode, and a journal of their
own for copies) have other input and journal locks but the same rows: without it, two
such runs at once both sent every row. One lock per batch, not a claim per row: one
flock for the whole run, where per-row claims would cost a file operation per row on the
hot path. What it leaves: runs of two files that share only some rows (an edited copy),
and runs by other users or on other machines (other state directories) meet at no lock;
for those, the journal and the lookups by id_from_submitter keep a row from being sent
twice only by runs that do not overlap in time. Stdin is read once, so it
has no content to key on before sending: its journal lock alone covers it.

Lock files live in the batch state directory (0700, files 0600), never in the input's
directory (which may be shared).

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


def take_lock(
    fd: int,
    what: str,
    wait_lock: float,
    holder: Callable[[], str],
    *,
    plural: bool = False,
    doing: str = "sending this batch",
) -> None:
    """Lock the open file `fd` exclusively (flock), waiting up to `wait_lock` seconds.

    Args:
        fd: the open lock file.
        what: the locked thing as the error names it ("batch journal PATH"); `plural`:
            it takes "are" ("the rows of batch file PATH").
        wait_lock: seconds to wait for another run to finish (0: fail at once).
        holder: names the process that holds the lock ("process 4242"); called only when
            the lock is not taken.
        doing: what the holder is doing, as the error says it.

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
        f"{what} {'are' if plural else 'is'} in use by another run ({holder()}){waited}: it "
        f"is {doing}; let it finish, or pass --wait-lock SECONDS to wait for it"
    )


def lock_dir() -> Path:
    """The directory of input locks (created 0700): STATE/locks, where STATE is the
    platform's user state directory for outkit (platformdirs)."""
    import platformdirs

    state = platformdirs.user_state_path("outkit")
    ensure_private_dir(state)
    return ensure_private_dir(state / "locks")


def spool_dir() -> Path:
    """Where a batch from stdin is copied before it is read (created 0700): STATE/spool."""
    import platformdirs

    state = platformdirs.user_state_path("outkit")
    ensure_private_dir(state)
    return ensure_private_dir(state / "spool")


class RunLock:
    """A lock file in STATE/locks held from construction to close(). The holder's process
    id is written in the lock file so that a second run can name it.

    Args:
        file_name: the lock file's name in the lock directory.
        name: the batch input as the user gave it (for messages).
        what, plural, doing: how the error names the locked thing (take_lock).
        wait_lock: seconds to wait for another run.

    Raises UsageError (exit 2) when the lock file cannot be opened (a symlink or another
    user's file in its place, an unwritable state directory) or another run holds it."""

    def __init__(
        self,
        file_name: str,
        name: str,
        what: str,
        *,
        wait_lock: float = 0.0,
        plural: bool = False,
        doing: str = "sending this batch",
    ) -> None:
        try:
            self.path = lock_dir() / file_name
            fd = open_private(self.path, write=True)
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            raise UsageError(f"cannot lock batch file {name}: {where}{exc.strerror}") from None
        try:
            take_lock(fd, what, wait_lock, lambda: _holder(fd), plural=plural, doing=doing)
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


class InputLock(RunLock):
    """The lock of one batch input file, keyed by its identity (device and inode)."""

    def __init__(self, name: str, file_id: tuple[int, int], *, wait_lock: float = 0.0) -> None:
        dev, ino = file_id
        super().__init__(
            f"input-{dev:x}-{ino:x}.lock", name, f"batch file {name}", wait_lock=wait_lock
        )


class RowsLock(RunLock):
    """The lock of a batch's rows, keyed by its content (batch.identity.BatchKey): what
    runs on copies of one file meet at."""

    def __init__(self, name: str, key: str, *, wait_lock: float = 0.0) -> None:
        super().__init__(
            f"rows-{key}.lock",
            name,
            f"the rows of batch file {name}",
            wait_lock=wait_lock,
            plural=True,
            doing="sending the same rows (this file, or a copy of it)",
        )


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
