"""The batch journal: an append-only JSON Lines file that makes reruns exactly-once.

Before rows are handed to the network they are recorded as *pending* (one fsync for a
whole chunk); each outcome is appended and fsynced before the row counts as done. On a
rerun, accepted rows are skipped, and pending rows without an outcome (the process died
while they were in flight) are looked up by `id_from_submitter` before anything is resent.
A torn last line from a crash is ignored.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from outkit_cli.errors import UsageError
from outkit_cli.fsutil import ensure_private_dir, open_private

VERSION = 1


@dataclass
class JournalState:
    """What earlier runs recorded: accepted rows, and rows whose fate is unknown."""

    accepted: dict[int, str | None] = field(default_factory=dict)  # line -> message id
    in_doubt: dict[int, str | None] = field(default_factory=dict)  # line -> id_from_submitter


def default_journal_path(input_path: Path | None, fingerprint: str) -> Path:
    if input_path is not None:
        return input_path.with_name(input_path.name + ".outkit-journal")
    import platformdirs

    return platformdirs.user_state_path("outkit") / "journals" / f"stdin-{fingerprint}.jsonl"


def _ensure_journal_dir(path: Path) -> None:
    """The journal's directory: the state dir for stdin journals, and any directory that
    must be created, are made 0700 (a journal holds message ids and addresses)."""
    import platformdirs

    state = platformdirs.user_state_path("outkit")
    if path.parent == state / "journals":
        ensure_private_dir(state)
        ensure_private_dir(path.parent)
    elif not path.parent.is_dir():
        ensure_private_dir(path.parent)


def read_journal(path: Path, fingerprint: str) -> JournalState:
    state = JournalState()
    try:
        fh = os.fdopen(open_private(path, write=False), "rb")
    except FileNotFoundError:
        return state
    except OSError as exc:
        raise UsageError(f"cannot read batch journal {path}: {exc.strerror}") from None
    pending: dict[int, str | None] = {}
    with fh:
        for n, raw in enumerate(fh):
            if not raw.endswith(b"\n"):
                break  # torn write from a crash: the record never counted
            try:
                rec = json.loads(raw)
            except ValueError:
                rec = None
            if n == 0 and not _is_header(rec):
                raise _not_a_journal(path)
            if not isinstance(rec, dict):
                raise UsageError(f"batch journal {path} is damaged; move it aside") from None
            kind = rec.get("type")
            if kind == "batch" and rec.get("fingerprint") != fingerprint:
                raise UsageError(
                    f"batch journal {path} belongs to another version of the input (its first "
                    "bytes changed); pass --journal with a new path to send it as a new batch"
                )
            if kind == "pending":
                for line, ifs in rec["rows"]:
                    pending[line] = ifs
            elif kind == "result":
                line = rec["row"]
                if rec["status"] == "unknown":
                    # the answer was lost and the lookup failed too: the server may hold
                    # the message, so the row stays in doubt and is looked up, not resent
                    pending[line] = rec.get("id_from_submitter")
                    state.accepted.pop(line, None)
                    continue
                pending.pop(line, None)
                if rec["status"] == "accepted":
                    state.accepted[line] = rec.get("id")
                else:
                    state.accepted.pop(line, None)
    state.in_doubt = {k: v for k, v in pending.items() if k not in state.accepted}
    return state


def _is_header(record: object) -> bool:
    return isinstance(record, dict) and record.get("type") == "batch"


def _not_a_journal(path: Path) -> UsageError:
    return UsageError(
        f"{path} is not a batch journal (it does not start with a journal header); "
        "refusing to change it: pass --journal with a new path"
    )


def _prepare(fd: int, path: Path) -> bool:
    """Check that the open file is a journal and drop a last line without its newline (a
    write cut short by a crash or a full disk: read_journal ignores it, and appending after
    it would fuse it with the next record). Returns True when the file is empty (new).

    A file that does not start with a journal header is never changed: a mistyped
    --journal must not truncate someone's document."""
    size = os.fstat(fd).st_size
    if size == 0:
        return True
    data = os.pread(fd, size, 0)
    try:
        header = json.loads(data.split(b"\n", 1)[0])
    except ValueError:
        header = None
    if not _is_header(header):
        raise _not_a_journal(path)
    end = data.rfind(b"\n") + 1
    if end < len(data):
        os.ftruncate(fd, end)
    return False


class Journal:
    """Appends records durably; safe to call from several threads."""

    def __init__(self, path: Path, fingerprint: str, source: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            _ensure_journal_dir(path)
            fd = open_private(path, write=True)
            try:
                new = _prepare(fd, path)
            except BaseException:
                os.close(fd)
                raise
            # unbuffered: each record goes out in os.write calls we can account for
            self._fh: IO[bytes] = os.fdopen(fd, "ab", buffering=0)
        except OSError as exc:
            raise UsageError(f"cannot write batch journal {path}: {exc.strerror}") from None
        if new:
            self._append(
                [{"type": "batch", "version": VERSION, "fingerprint": fingerprint, "input": source}]
            )

    def _append(self, records: Iterable[Mapping[str, Any]]) -> None:
        self._write(
            b"".join(
                json.dumps(r, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
                for r in records
            )
        )

    def _write(self, data: bytes) -> None:
        if not data:
            return
        with self._lock:
            fd = self._fh.fileno()
            before: int | None = None
            try:
                before = os.fstat(fd).st_size
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            except OSError as exc:
                # e.g. a full disk mid-record: cut the half-written record off, or the
                # rerun would append to it and find the journal damaged
                if before is not None:
                    with contextlib.suppress(OSError):
                        os.ftruncate(fd, before)
                raise UsageError(
                    f"cannot write batch journal {self.path}: {exc.strerror} (run the same "
                    "command again to send the rest)"
                ) from None

    def pending(self, rows: Iterable[tuple[int, str | None]]) -> None:
        """Record rows about to be sent; returns once that is on disk."""
        rows = list(rows)
        if rows:
            self._append([{"type": "pending", "rows": rows}])

    def results(self, outcomes: Iterable[Mapping[str, Any]]) -> None:
        """Record outcomes (`row`, `status`, `id`, `error`, ...) with one fsync."""
        self._append({"type": "result", **o} for o in outcomes)

    def result_lines(self, lines: Iterable[str]) -> None:
        """Record outcomes already serialised as JSON objects (the result lines a batch
        prints), with one fsync: serialising each outcome once is a batch's hot path."""
        self._write("".join(f'{{"type":"result",{line[1:]}\n' for line in lines).encode())

    def close(self) -> None:
        with self._lock:
            self._fh.close()
