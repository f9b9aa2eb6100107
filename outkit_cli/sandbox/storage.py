"""What the sandbox keeps on disk, bounded: the storage quota (`serve --max-storage`), the
answer to a full or failing disk, and private database files.

A create past the quota, or on a full disk, is a JSON 507 `insufficient_storage` (RFC 4918
section 11.5) saying what to do; any other failure to read or write the database is a 503
naming the cause. Nothing here keeps the server from going on once space is freed: every
request looks again.
"""

from __future__ import annotations

import binascii
import errno
import json
import os
import re
import sqlite3
import stat
import threading
import time
from collections.abc import Iterable
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
    """The data dir's use (database, WAL and outbox) and the checks a message makes
    against `limit` bytes (None or 0: no limit).

    The use is measured in a background thread (`start`), every `every` seconds or ten
    times the last measure's duration, whichever is longer, so no request ever walks the
    outbox. The database counts its live pages only (page_count - freelist_count): the
    pages a delete or clear frees are reused by later messages, so they count as free.
    Bytes let in since the last measure are added to it (`check`), so a burst cannot
    overshoot the limit; bytes a message will write later (its delivered .eml, its
    rendered parts stored) are held for it (`hold`) until it is done (`settle`), so
    queued messages cannot overshoot it either."""

    def __init__(self, data_dir: Path, limit: int | None, *, every: float = 1.0) -> None:
        self.data_dir = data_dir
        self.limit = limit or None
        self.every = every
        self._lock = threading.Lock()
        self._size = 0
        self._held: dict[str, int] = {}  # message id -> bytes it may still write
        self._held_total = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def measure(self) -> int:
        """Measure the use now (bytes)."""
        size = _database_size(self.data_dir / DB_NAME)
        size += sum(_file_size(self.data_dir / name) for name in DB_FILES[1:])
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
        """Bytes measured, let in since, and held for messages not done yet."""
        with self._lock:
            return self._size + self._held_total

    def check(self, incoming: int) -> None:
        """Raise a 507 when storing `incoming` more bytes would pass the limit."""
        if self.limit is None:
            return
        with self._lock:
            used = self._size + self._held_total
            if used + incoming <= self.limit:
                self._size += incoming
                return
        raise self.full_error(used, "this message")

    def hold(self, message_id: str, size: int, what: str = "this message") -> None:
        """Hold `size` bytes for what message `message_id` will write (its rendered parts,
        its .eml), on top of what it holds already; raises a 507 ApiError (naming `what`)
        when they do not fit under the limit. The bytes stay counted until `settle`."""
        if self.limit is None or size <= 0:
            return
        with self._lock:
            used = self._size + self._held_total
            if used + size <= self.limit:
                self._held[message_id] = self._held.get(message_id, 0) + size
                self._held_total += size
                return
        raise self.full_error(used, what)

    def settle(self, message_id: str) -> None:
        """The message is done writing: what it held counts as written until the next
        measure sees the real size."""
        with self._lock:
            size = self._held.pop(message_id, 0)
            self._held_total -= size
            self._size += size

    def full_error(self, used: int, what: str) -> ApiError:
        assert self.limit is not None
        return ApiError(
            507, "insufficient_storage",
            f"the sandbox's data dir ({self.data_dir}) holds {human_size(used)}, and {what} "
            f"would take it past --max-storage ({human_size(self.limit)}): clear "
            "the inbox (or delete files in its outbox), or restart `outkit serve` with a "
            "larger --max-storage",
        )  # fmt: skip


def written_size(texts: Iterable[str | None], files: int = 0) -> int:
    """Bytes a message writes for `texts` (its bodies, as stored) and `files` bytes of
    attachments, at most: each text twice in the database (the row and its copy in the
    write-ahead log, JSON-escaped UTF-8) and once in the delivered .eml (quoted-printable),
    files once in the database and once base64-encoded in the .eml, plus a few KiB of
    headers."""
    total = 4096 + files + (files * 4 + 2) // 3 + files // 38
    for text in texts:
        if not text:
            continue
        raw = text.encode("utf-8", "replace")
        stored = len(raw) + len(json.dumps(text, ensure_ascii=False)) - len(text)
        total += 2 * stored + len(binascii.b2a_qp(raw))
    return total


def _database_size(path: Path) -> int:
    """Bytes of the database's live pages (freed pages are reused: they count as free);
    the file's size if SQLite cannot say."""
    if not path.is_file():
        return 0
    try:
        conn = sqlite3.connect(path, timeout=1)
    except sqlite3.Error:
        return _file_size(path)
    try:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        return int((pages - free) * page_size)
    except sqlite3.Error:
        return _file_size(path)
    finally:
        conn.close()


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
