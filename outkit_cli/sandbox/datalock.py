"""One `outkit serve` per data dir: an exclusive lock on DATA_DIR/serve.lock while it runs.

Two sandboxes on one data dir would share a SQLite file and an outbox, and the second's
`--init-profile` would repoint the profile at itself. The lock is an flock(2) on an open
file, so the kernel drops it when the holder exits in any way (kill -9 included): a stale
lock file never blocks the next start. The file holds the holder's process id, to name it.
"""

from __future__ import annotations

import os
from pathlib import Path

from outkit_cli.fsutil import open_private

LOCK_NAME = "serve.lock"


class DataDirInUse(Exception):
    """Another process holds the data dir's lock."""

    def __init__(self, directory: Path, holder: int | None) -> None:
        self.directory = directory
        self.holder = holder
        who = f"process {holder}" if holder else "another process"
        super().__init__(
            f"data dir {directory} is in use by another outkit serve ({who}); stop that "
            "one, or give this one another --data-dir"
        )


def lock_data_dir(directory: Path) -> int | None:
    """Take the data dir's lock for the life of this process.

    Args:
        directory: the sandbox's data dir; it must exist.

    Returns:
        The file descriptor that holds the lock (closing it releases the lock), or None
        where flock(2) does not exist (Windows), which runs without the check.

    Raises:
        DataDirInUse: another process holds the lock; ``holder`` is its process id when
            the lock file names one.
        fsutil.UnsafeFileError: the lock file is a symlink, not a regular file, or
            another user's.
        OSError: the lock file cannot be created.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return None
    path = directory / LOCK_NAME
    fd = open_private(path, write=True)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        raise DataDirInUse(directory, holder) from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _holder(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None
