"""What the sandbox keeps on disk, bounded: the storage quota (`serve --max-storage`), the
answer to a full or failing disk, and private database files.

A create past the quota, or on a full disk, is a JSON 507 `insufficient_storage` (RFC 4918
section 11.5) saying what to do; any other failure to read or write the database is a 503
naming the cause. Nothing here keeps the server from going on once space is freed: every
request looks again.
"""

from __future__ import annotations

import errno
import os
import re
import sqlite3
import stat
import threading
import time
from pathlib import Path

from outkit_cli.sandbox.errors import ApiError

DEFAULT_MAX_STORAGE = 1024**3  # 1 GiB: thousands of big messages, far from filling a disk
DB_NAME = "sandbox.sqlite3"
DB_FILES = (DB_NAME, DB_NAME + "-wal", DB_NAME + "-shm")
_SIZE = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?)(?:i?B)?", re.IGNORECASE)
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def parse_size(text: str) -> int:
    """Bytes from "500M", "2G", "1.5GiB", "1048576" (K, M, G, T are powers of 1024).

    Raises ValueError naming the accepted forms."""
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise ValueError(f"expected a size such as 500M or 2G, got {text!r}")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def human_size(size: float) -> str:
    """1536 -> "1.5 KiB"."""
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"  # pragma: no cover


def tree_size(path: Path) -> int:
    """Bytes in the regular files under `path` (symlinks not followed); 0 if missing."""
    total = 0
    try:
        entries = list(os.scandir(path))
    except OSError:
        return 0
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                total += tree_size(Path(entry.path))
            elif entry.is_file(follow_symlinks=False):
                total += entry.stat(follow_symlinks=False).st_size
        except OSError:
            continue  # removed while we looked
    return total


class Quota:
    """The data dir's use (database, WAL and outbox) and the check a create makes against
    `limit` bytes (None or 0: no limit).

    The use is measured in a background thread (`start`), every `every` seconds or ten
    times the last measure's duration, whichever is longer, so no request ever walks the
    outbox; bytes let in since the last measure are added to it, so a burst cannot
    overshoot the limit."""

    def __init__(self, data_dir: Path, limit: int | None, *, every: float = 1.0) -> None:
        self.data_dir = data_dir
        self.limit = limit or None
        self.every = every
        self._lock = threading.Lock()
        self._size = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def measure(self) -> int:
        """Measure the use now (bytes)."""
        size = sum(_file_size(self.data_dir / name) for name in DB_FILES)
        size += tree_size(self.data_dir / "outbox")
        with self._lock:
            self._size = size
        return size

    def start(self) -> None:
        if self.limit is None or self._thread is not None:
            return
        self.measure()
        self._thread = threading.Thread(target=self._loop, name="storage-quota", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        wait = self.every
        while not self._stop.wait(wait):
            began = time.monotonic()
            self.measure()
            wait = max(self.every, 10 * (time.monotonic() - began))

    def used(self) -> int:
        with self._lock:
            return self._size

    def check(self, incoming: int) -> None:
        """Raise a 507 when storing `incoming` more bytes would pass the limit."""
        if self.limit is None:
            return
        with self._lock:
            used = self._size
            if used + incoming <= self.limit:
                self._size = used + incoming
                return
        raise ApiError(
            507, "insufficient_storage",
            f"the sandbox's data dir ({self.data_dir}) holds {human_size(used)}, and this "
            f"message would take it past --max-storage ({human_size(self.limit)}): clear "
            "the inbox (or delete files in its outbox), or restart `outkit serve` with a "
            "larger --max-storage",
        )  # fmt: skip


def _file_size(path: Path) -> int:
    try:
        return os.lstat(path).st_size
    except OSError:
        return 0


def storage_error(exc: BaseException, data_dir: Path) -> ApiError | None:
    """The answer to a database or file-system failure, or None when `exc` is not one.

    A full disk (ENOSPC, EDQUOT, EFBIG; SQLite's SQLITE_FULL) is a 507 saying so; other
    SQLite and OS errors are a 503 naming the error."""
    if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
        full = True
    elif isinstance(exc, sqlite3.Error):
        full = getattr(exc, "sqlite_errorcode", None) == 13 or "full" in str(exc)  # SQLITE_FULL
    elif isinstance(exc, OSError):
        full = False
    else:
        return None
    if full:
        return ApiError(
            507, "insufficient_storage",
            f"the disk holding the sandbox's data dir ({data_dir}) is full ({exc}): nothing "
            "was stored; free some space and try again (the sandbox goes on by itself)",
        )  # fmt: skip
    return ApiError(
        503, "storage_unavailable",
        f"the sandbox could not read or write its data in {data_dir} ({type(exc).__name__}: "
        f"{exc}); nothing was stored; try again, and check the disk if it goes on",
    )  # fmt: skip


def make_private(db_path: Path) -> None:
    """Create the database file 0600 if missing and take group and other permissions off
    it and its -wal and -shm files where they exist (SQLite gives those the database
    file's mode when it creates them). Symlinks are refused (fsutil.UnsafeFileError)."""
    from outkit_cli.fsutil import open_private

    for path in (db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-shm")):
        if path != db_path and not os.path.lexists(path):
            continue
        fd = open_private(path, write=True)
        try:
            if stat.S_IMODE(os.fstat(fd).st_mode) & 0o077:
                os.fchmod(fd, 0o600)
        finally:
            os.close(fd)


def exposure_warning(data_dir: Path) -> str | None:
    """A warning when other users may read or enter `data_dir` (it holds the API keys and
    every message), else None."""
    try:
        mode = stat.S_IMODE(os.stat(data_dir).st_mode)
    except OSError:
        return None
    if not mode & 0o077:
        return None
    return (
        f"the data dir {data_dir} is open to other users (mode {mode:04o}): it holds the "
        f"sandbox's API keys and every message; make it private with: chmod 700 {data_dir}"
    )
