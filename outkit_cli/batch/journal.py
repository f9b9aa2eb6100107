"""The batch journal: an append-only JSON Lines file that makes reruns exactly-once.

Records are keyed by row identity (batch.identity), not by line, so a journal stays true
when the file is edited. A header (`batch`, format version), then per run a `run` record
(process id) and, for --resend, a `resend` record (its generation), and a `finished`
record (the generation) when a run of a resend generation went through every row; a
`resend` without its `finished` is a resend that was interrupted, and the next
`--resend` continues it instead of starting another (no row sent a third time). Before rows are
handed to the network they are recorded as `pending` (one fsync for a whole chunk); each
outcome (`result`) is appended and fsynced before the row counts as done. On a rerun,
accepted rows are skipped, and pending rows without an outcome (the process died while
they were in flight) are looked up by `id_from_submitter` before anything is resent; so
are rows a first run could not look up (recorded `pending` again after their failed
result: batch.runner `record`). A torn last line from a crash is ignored. The file is
locked (flock) for the whole run (batch.locks; the input file has a lock of its own).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from outkit_cli.batch.locks import take_lock
from outkit_cli.errors import UsageError
from outkit_cli.fsutil import ensure_private_dir, open_private

VERSION = 2


@dataclass
class JournalState:
    """What earlier runs recorded, by row identity (batch.identity)."""

    accepted: dict[str, str | None] = field(default_factory=dict)  # identity -> message id
    # identity -> (line, id_from_submitter sent): rows whose fate is unknown
    in_doubt: dict[str, tuple[int, str | None]] = field(default_factory=dict)
    lines: dict[int, str] = field(default_factory=dict)  # line -> identity accepted there
    generation: int = 0  # the latest --resend generation
    # that generation was started and no run of it went through every row: a rerun,
    # --resend or not, continues it
    resend_open: bool = False
    runs: int = 0  # earlier runs recorded: 0 for a new (or lost) journal
    # a run went through every row (a `finished` record): until then every run looks its
    # rows up before sending, as the first did (a first run stopped halfway, then run
    # again, sent rows it never reached without asking whether they were sent before)
    completed: bool = False

    def is_new(self) -> bool:
        return self.runs == 0


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


def peek_journal(path: Path) -> JournalState:
    """The journal's state without taking its lock or creating it (for --dry-run)."""
    try:
        fh = os.fdopen(open_private(path, write=False), "rb")
    except FileNotFoundError:
        return JournalState()
    except OSError as exc:
        raise UsageError(f"cannot read batch journal {path}: {exc.strerror}") from None
    with fh:
        return read_state(fh, path)


def read_state(fh: IO[bytes], path: Path) -> JournalState:
    """Replay the records of an open journal. Raises UsageError for a file that is not a
    journal of this version, or is damaged."""
    state = JournalState()
    pending: dict[str, tuple[int, str | None]] = {}
    for n, raw in enumerate(fh):
        if not raw.endswith(b"\n"):
            break  # torn write from a crash: the record never counted
        try:
            rec = json.loads(raw)
        except (ValueError, RecursionError):  # RecursionError: a line nested too deeply
            rec = None
        if n == 0:
            if not _is_header(rec):
                raise _not_a_journal(path)
            if rec.get("version") != VERSION:
                raise UsageError(
                    f"batch journal {path} was written by an earlier outkit (journal format "
                    f"{rec.get('version')}): finish that batch with the version that started it"
                )
            continue
        if not isinstance(rec, dict):
            raise UsageError(f"batch journal {path} is damaged; move it aside") from None
        try:
            _replay(rec, state, pending)
        except (KeyError, TypeError, ValueError):
            raise UsageError(f"batch journal {path} is damaged; move it aside") from None
    state.in_doubt = {k: v for k, v in pending.items() if k not in state.accepted}
    return state


def _replay(
    rec: dict[str, Any], state: JournalState, pending: dict[str, tuple[int, str | None]]
) -> None:
    """Apply one record to the state. Raises ValueError for a record of a shape the
    writer (`Journal`) never makes: the journal is the user's file, and a guess from a
    damaged record could send a row again without looking it up first."""
    kind = rec.get("type")
    if kind == "run":
        state.runs += 1
    elif kind == "resend":
        generation = _number(rec["generation"])
        if generation > state.generation:
            state.generation, state.resend_open = generation, True
    elif kind == "finished":
        state.completed = True
        if _number(rec["generation"]) == state.generation:
            state.resend_open = False
    elif kind == "pending":
        rows = rec["rows"]
        if not isinstance(rows, list):
            raise ValueError("pending rows are not a list")
        for row in rows:
            # [line, identity] when the row is sent with its identity as id_from_submitter,
            # else [line, identity, id_from_submitter or null (--no-auto-id)]
            if not isinstance(row, list) or len(row) not in (2, 3):
                raise ValueError("a pending row is not [line, identity(, id)]")
            key = _text(row[1])
            ifs = key if len(row) == 2 else None if row[2] is None else _text(row[2])
            pending[key] = (_number(row[0]), ifs)
    elif kind == "result":
        key, status, line = _text(rec["key"]), rec["status"], _number(rec["row"])
        if status not in RESULT_STATUSES:
            raise ValueError(f"no such result status: {status!r}")
        if status == "unknown":
            # the answer was lost and the lookup failed too: the server may hold the
            # message, so the row stays in doubt and is looked up, not resent
            ifs = rec.get("id_from_submitter")
            pending[key] = (line, None if ifs is None else _text(ifs))
            state.accepted.pop(key, None)
            return
        pending.pop(key, None)
        if status in ("accepted", "skipped"):
            # the API's id as it answered it (only shown again, never sent)
            state.accepted[key] = rec.get("id")
            state.lines[line] = key
        else:
            state.accepted.pop(key, None)
    else:
        raise ValueError(f"no such record type: {kind!r}")


# what `Journal.results` writes (batch.runner, batch.plan, batch.recovery); "valid" is a
# --dry-run's, which writes no journal
RESULT_STATUSES = frozenset({"accepted", "skipped", "invalid", "failed", "unknown"})


def _number(value: object) -> int:
    """A line or generation as written: a JSON integer, never a bool (an int to Python)."""
    if type(value) is not int or value < 0:
        raise ValueError(f"not a line number: {value!r}")
    return value


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"not a string: {value!r}")
    return value


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
    except (ValueError, RecursionError):
        header = None
    if not _is_header(header):
        raise _not_a_journal(path)
    end = data.rfind(b"\n") + 1
    if end < len(data):
        os.ftruncate(fd, end)
    return False


class Journal:
    """The journal of one run, held under an exclusive lock (flock) from open to close:
    a second run on the same journal waits up to `wait_lock` seconds, then fails naming
    the process that holds it. Appends records durably; safe to call from several threads.

    Raises UsageError (exit 2) when the file cannot be opened, is not a journal, or is
    locked by another run."""

    def __init__(self, path: Path, source: str, *, wait_lock: float = 0.0) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            _ensure_journal_dir(path)
            fd = open_private(path, write=True)
        except OSError as exc:
            raise UsageError(f"cannot write batch journal {path}: {exc.strerror}") from None
        try:
            take_lock(fd, f"batch journal {path}", wait_lock, lambda: _holder(fd, path))
            new = _prepare(fd, path)
            self.state = JournalState()
            if not new:
                with os.fdopen(os.dup(fd), "rb") as fh:  # a dup: the lock stays held
                    fh.seek(0)
                    self.state = read_state(fh, path)
        except OSError as exc:
            os.close(fd)
            raise UsageError(f"cannot write batch journal {path}: {exc.strerror}") from None
        except BaseException:
            os.close(fd)
            raise
        # unbuffered: each record goes out in os.write calls we can account for
        self._fh: IO[bytes] = os.fdopen(fd, "ab", buffering=0)
        head = [{"type": "batch", "version": VERSION, "input": source}] if new else []
        # this run, at once: its process id names it to a second run that finds it locked
        run = {"type": "run", "pid": os.getpid(), "started": time.time()}
        self._append([*head, run])

    def start_run(self, generation: int) -> None:
        """Record the --resend generation this run sends, when it starts a new one."""
        if generation > self.state.generation:
            self._append([{"type": "resend", "generation": generation}])

    def finish(self, generation: int) -> None:
        """Record that this run went through every row of resend `generation` (after
        which --resend starts the next one)."""
        if generation:
            self._append([{"type": "finished", "generation": generation}])

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

    def pending(self, rows: Iterable[tuple[int, str, str | None]]) -> None:
        """Record rows about to be sent (line, identity, id_from_submitter sent); returns
        once that is on disk."""
        packed = [[line, key] if ifs == key else [line, key, ifs] for line, key, ifs in rows]
        if packed:
            self._append([{"type": "pending", "rows": packed}])

    def results(self, outcomes: Iterable[Mapping[str, Any]]) -> None:
        """Record outcomes (`row`, `status`, `id`, `error`, ...) with one fsync."""
        self._append({"type": "result", **o} for o in outcomes)

    def result_lines(self, lines: Iterable[tuple[str, str]]) -> None:
        """Record outcomes already serialised as JSON objects (the result lines a batch
        prints) with their row identities, with one fsync: serialising each outcome once
        is a batch's hot path."""
        self._write(
            "".join(
                f'{{"type":"result","key":{json.dumps(key)},{line[1:]}\n' for key, line in lines
            ).encode()
        )

    def close(self) -> None:
        with self._lock:
            self._fh.close()


def _holder(fd: int, path: Path) -> str:
    """The process named by the journal's last run record. The holder writes it just after
    taking the lock: a run that started at the same moment gives it a second to appear."""
    deadline = time.monotonic() + 1.0
    while True:
        pid = None
        with contextlib.suppress(OSError), os.fdopen(os.dup(fd), "rb") as fh:
            fh.seek(0)
            for raw in fh:
                if b'"type":"run"' in raw:
                    with contextlib.suppress(ValueError, AttributeError, RecursionError):
                        pid = json.loads(raw).get("pid")
        if isinstance(pid, int) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return f"process {pid}" if isinstance(pid, int) else "a process that is just starting"
