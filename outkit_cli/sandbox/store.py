"""Messages in SQLite: one row per message, the API object kept as JSON text.

WAL mode with synchronous=NORMAL: a commit is durable against a crash of this process
(kill -9), which is what the sandbox promises; the answer is sent only after the commit.
Connections are pooled, one per thread at a time, so the request path never opens one.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from outkit_cli.sandbox.attachments import Attachment

from outkit_cli.sandbox.storage import make_private

# seq (the rowid) orders messages newest first. Only the indexes lookups need: every
# extra index is paid on each insert. Listing by status scans newest first until `limit`.
SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    done INTEGER NOT NULL DEFAULT 0,
    id_from_submitter TEXT,
    doc TEXT NOT NULL
);
-- only messages that have an id_from_submitter are in its index: a create without one
-- writes one index page fewer (SQLite uses a partial index for '= ?' and 'IN (...)')
CREATE INDEX IF NOT EXISTS messages_submitter_given ON messages (id_from_submitter)
    WHERE id_from_submitter IS NOT NULL;
DROP INDEX IF EXISTS messages_submitter;
CREATE TABLE IF NOT EXISTS attachments (
    message_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    filename TEXT NOT NULL,
    content_type TEXT NOT NULL,
    disposition TEXT NOT NULL,
    content_id TEXT,
    data BLOB NOT NULL,
    PRIMARY KEY (message_id, position)
);
"""


# What one inbox row shows, read with json_extract so a page never parses whole documents.
INBOX_FIELDS = (
    "id", "status", "type", "to", "subject", "text_body", "project", "template", "received_at",
)  # fmt: skip
SEARCHED_FIELDS = ("to", "subject", "html_body", "text_body")
_FILTERABLE = ("type", "project", "template")


def _field(name: str) -> str:
    # the only names ever put into SQL text; values always go as parameters
    if name not in _FILTERABLE:
        raise ValueError(f"cannot filter on {name!r}")
    return name


def dumps(doc: dict[str, Any]) -> str:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


# bounds of the recent texts kept in memory for get_text (characters of JSON)
RECENT_CHARS = 8 * 1024 * 1024
RECENT_TEXT_MAX = 64 * 1024

_INSERT = "INSERT INTO messages (id, status, done, id_from_submitter, doc) VALUES (?, ?, ?, ?, ?)"
_UPDATE = "UPDATE messages SET status = ?, done = ?, doc = ? WHERE id = ?"


class _Pending:
    __slots__ = ("error", "row", "settled")

    def __init__(self, row: tuple[Any, ...]) -> None:
        self.row = row
        self.settled = False
        self.error: Exception | None = None


class SearchCutShort(Exception):
    """A page's query stopped at its deadline (`Store.page`'s `seconds`); `rows` holds
    what it found until then, newest first, as `Store.page` returns them."""

    def __init__(self, rows: list[tuple[int, dict[str, Any]]]) -> None:
        super().__init__(f"cut short after {len(rows)} rows")
        self.rows = rows


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        # idle connections, the last returned first (a plain list under a lock: a
        # queue.Queue's conditions cost more than the statement on the create path)
        self._pool: list[sqlite3.Connection] = []
        self._pool_lock = threading.Lock()
        # One writer at a time, queued here: SQLite's own busy handler would make a
        # waiting writer sleep for milliseconds, which caps the POST rate.
        self._write_lock = threading.Lock()
        self._queue_lock = threading.Lock()
        self._queue: list[_Pending] = []
        # bumped on every write: the inbox's live views poll it (an int read, no query)
        self.changes = 0
        # The JSON texts of the messages written last, by id, for get_text: clients poll the
        # messages they have just sent (`send --wait`, a batch's look-ups), and a read from
        # the dict costs no SQLite call, whose release of the GIL made the HTTP threads and
        # the event loop hand it back and forth (bench/bench_sandbox.py). Written through,
        # only under _write_lock and after the commit, so it never holds what the database
        # does not; a miss reads the database and does not fill it (a read racing a write
        # could put an old text back).
        self._recent: dict[str, str] = {}
        self._recent_chars = 0
        make_private(path)  # 0600, also in a data dir that already existed
        with self.connection() as conn:
            conn.executescript(SCHEMA)
        # Checkpoints (copying the WAL into the database, with an fsync) run in this
        # thread, not inside a request's commit as SQLite's automatic ones would.
        self._closing = threading.Event()
        self._shrink = threading.Event()  # set after deletes: truncate the WAL
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop, name="sqlite-checkpoint", daemon=True
        )
        self._checkpointer.start()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA wal_autocheckpoint=0")
        return conn

    def _checkpoint_loop(self, every: float = 1.0) -> None:
        conn = self._connect()
        # a TRUNCATE checkpoint waits for readers while it holds writers off: not long
        conn.execute("PRAGMA busy_timeout=200")
        try:
            while not self._closing.wait(every):
                if self._shrink.is_set():
                    # after a delete or clear: the WAL keeps its largest size until it is
                    # truncated, and the storage quota counts it (issue: a clear that
                    # freed space must let creates in again)
                    busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
                    if not busy:
                        self._shrink.clear()
                    continue
                # PASSIVE: never waits for or blocks a writer
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            conn.close()

    @contextlib.contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        with self._pool_lock:
            conn = self._pool.pop() if self._pool else None
        if conn is None:
            conn = self._connect()
        try:
            yield conn
        finally:
            with self._pool_lock:
                self._pool.append(conn)

    def insert(self, doc: dict[str, Any]) -> str:
        """Store a new message; returns its JSON text once it is committed.

        Group commit: each insert joins a queue; whoever next holds the write lock
        commits every queued row in one transaction, and the others find theirs done
        when they get the lock. Concurrent requests share one commit instead of queueing
        for one each.
        """
        text = dumps(doc)
        row = (doc["id"], doc["status"], int(doc["done"]), doc["id_from_submitter"], text)
        pending = _Pending(row)
        with self._queue_lock:
            self._queue.append(pending)
        with self._write_lock:
            if not pending.settled:
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                self._commit(batch)
                for p in batch:
                    if p.error is None:
                        self._remember(p.row[0], p.row[4])
        if pending.error is not None:
            raise pending.error
        return text

    def _commit(self, batch: list[_Pending]) -> None:
        try:
            with self.connection() as conn:
                if len(batch) == 1:
                    # a statement outside a transaction commits by itself: one SQLite call
                    # (each gives up the GIL) instead of three
                    try:
                        conn.execute(_INSERT, batch[0].row)
                    except Exception as exc:  # nothing written, no transaction left open
                        batch[0].error = exc
                    return
                try:
                    conn.execute("BEGIN")
                    conn.executemany(_INSERT, [p.row for p in batch])
                    conn.execute("COMMIT")
                except Exception:  # not only sqlite3.Error: a str that is not UTF-8 raises
                    # UnicodeEncodeError; either way no transaction may stay open on a
                    # pooled connection
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    # one bad row must not fail the others: each on its own
                    for p in batch:
                        try:
                            conn.execute(_INSERT, p.row)
                        except Exception as exc:
                            p.error = exc
        except Exception as exc:  # no connection, or the rollback failed: nothing written
            for p in batch:
                p.error = p.error or exc
        finally:
            # every queued row is settled whatever happened: a row left unsettled would be
            # answered 200 by its own request without ever being written
            for p in batch:
                p.settled = True
            self.changes += 1

    def add_attachments(self, message_id: str, files: list[Attachment]) -> None:
        """Store a message's files; called before the message itself is inserted, so a
        stored message never lacks its files (a crash in between leaves unused rows)."""
        rows = [
            (message_id, n, f.filename, f.content_type, f.disposition, f.content_id, f.data)
            for n, f in enumerate(files)
        ]
        with self._write_lock, self.connection() as conn:
            conn.execute("BEGIN")
            try:
                conn.executemany("INSERT INTO attachments VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def attachments(self, message_id: str) -> list[Attachment]:
        """A message's files in the order they were sent."""
        from outkit_cli.sandbox.attachments import Attachment

        with self.connection() as conn:
            rows = conn.execute(
                "SELECT filename, content_type, disposition, content_id, data FROM attachments "
                "WHERE message_id = ? ORDER BY position",
                (message_id,),
            ).fetchall()
        return [Attachment(r[0], r[1], r[2], bytes(r[4]), r[3]) for r in rows]

    def update(self, doc: dict[str, Any]) -> str:
        """Save a stored message as it is now; returns its JSON text. Raises KeyError for
        a doc without an id, sqlite3.Error (or OSError) when the database fails."""
        return self.update_many([doc])[0]

    def update_many(self, docs: Sequence[dict[str, Any]]) -> list[str]:
        """Save several stored messages in one transaction (all or none); returns their
        JSON texts. One commit writes each changed page once: the worker's messages sit
        side by side, so a batch costs little more than one (worker.py)."""
        if not docs:
            return []
        texts = [dumps(doc) for doc in docs]
        rows = [(d["status"], int(d["done"]), t, d["id"]) for d, t in zip(docs, texts, strict=True)]
        with self._write_lock:
            try:
                with self.connection() as conn:
                    if len(rows) == 1:
                        # outside a transaction a statement commits by itself: one call
                        conn.execute(_UPDATE, rows[0])
                    else:
                        conn.execute("BEGIN")
                        try:
                            conn.executemany(_UPDATE, rows)
                            conn.execute("COMMIT")
                        except BaseException:
                            if conn.in_transaction:  # no transaction left on a pooled connection
                                conn.execute("ROLLBACK")
                            raise
            except BaseException:
                for doc in docs:  # whatever the database holds now, read it there
                    self._forget(doc["id"])
                raise
            for doc, text in zip(docs, texts, strict=True):
                self._remember(doc["id"], text)
            self.changes += 1
        return texts

    def _remember(self, message_id: str, text: str) -> None:
        """Keep `text` as the message's current JSON (caller holds _write_lock)."""
        self._forget(message_id)
        if len(text) > RECENT_TEXT_MAX:
            return
        self._recent[message_id] = text  # the newest last: the oldest go first
        self._recent_chars += len(text)
        while self._recent_chars > RECENT_CHARS:
            oldest = next(iter(self._recent))
            self._recent_chars -= len(self._recent.pop(oldest))

    def _forget(self, message_id: str) -> None:
        """Drop the message from the recent texts (caller holds _write_lock)."""
        old = self._recent.pop(message_id, None)
        if old is not None:
            self._recent_chars -= len(old)

    def get_text(self, message_id: str) -> str | None:
        """The message's JSON text as stored, or None when there is no such message."""
        text = self._recent.get(message_id)
        if text is not None:
            return text
        with self.connection() as conn:
            row = conn.execute("SELECT doc FROM messages WHERE id = ?", (message_id,)).fetchone()
        return row[0] if row else None

    def get(self, message_id: str) -> dict[str, Any] | None:
        text = self.get_text(message_id)
        return json.loads(text) if text is not None else None

    def list_texts(
        self,
        *,
        limit: int,
        status: str | None = None,
        id_from_submitter: str | Sequence[str] | None = None,
        before: str | None = None,
        max_bytes: int | None = None,
    ) -> tuple[list[str], str | None]:
        """Newest first: (the messages' JSON texts, the id to page on from, or None).

        `before` is a message id: only older messages are listed. Rows are read one at a
        time and the list stops before its text passes `max_bytes` (it always holds at
        least one message); the id of the last message listed is then returned, for the
        next page's `before`. Raises KeyError when `before` names no message."""
        where, args = [], []
        if before is not None:
            with self.connection() as conn:
                row = conn.execute("SELECT seq FROM messages WHERE id = ?", (before,)).fetchone()
            if row is None:
                raise KeyError(before)
            where.append("seq < ?")
            args.append(row[0])
        if status is not None:
            where.append("status = ?")
            args.append(status)
        if id_from_submitter is not None:
            ids = [id_from_submitter] if isinstance(id_from_submitter, str) else id_from_submitter
            where.append(f"id_from_submitter IN ({', '.join('?' * len(ids))})")
            args.extend(ids)
        sql = "SELECT id, doc FROM messages"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq DESC LIMIT ?"
        texts: list[str] = []
        total = 0
        last_id: str | None = None
        with self.connection() as conn:
            for message_id, text in conn.execute(sql, (*args, limit)):
                if max_bytes is not None and texts and total + len(text) > max_bytes:
                    return texts, last_id
                texts.append(text)
                total += len(text) + 1
                last_id = message_id
        return texts, None

    def page(
        self,
        *,
        limit: int,
        before: int | None = None,
        where: dict[str, str] | None = None,
        search: str | None = None,
        seconds: float | None = None,
    ) -> list[tuple[int, dict[str, Any]]]:
        """One page of messages for the inbox, newest first: [(seq, summary)].

        Keyset paging (`before` = the last seq of the previous page) keeps every page as
        cheap as the first. `where` filters on top-level fields (status, type, project,
        template) by equality; `search` is a case-insensitive (ASCII) substring of to,
        subject, html_body or text_body. A summary holds INBOX_FIELDS only. `seconds`
        bounds the query's time (a search reads every body: 40 bodies of 9 MB took 4-7 s):
        past it, SearchCutShort is raised with the rows found until then.
        """
        try:
            return self._page(limit, before, where, search, guarded=False, seconds=seconds)
        except sqlite3.OperationalError as exc:
            if "malformed JSON" not in str(exc):
                raise
        # A document SQLite cannot parse (one stored before numbers were checked, with
        # Infinity in it) must not take the whole list down: read again with every
        # json_extract guarded, so such a message shows with its id and status only.
        return self._page(limit, before, where, search, guarded=True, seconds=seconds)

    def _page(
        self,
        limit: int,
        before: int | None,
        where: dict[str, str] | None,
        search: str | None,
        *,
        guarded: bool,
        seconds: float | None = None,
    ) -> list[tuple[int, dict[str, Any]]]:
        def field(name: str) -> str:
            if guarded and name in ("id", "status"):
                return name  # columns of their own
            expr = f"json_extract(doc, '$.{name}')"
            return f"(CASE WHEN json_valid(doc) THEN {expr} END)" if guarded else expr

        conds: list[str] = []
        args: list[Any] = []
        if before is not None:
            conds.append("seq < ?")
            args.append(before)
        for name, value in sorted((where or {}).items()):
            if name == "status":
                conds.append("status = ?")  # a column: no JSON parsing
            else:
                conds.append(f"{field(_field(name))} = ?")
            args.append(value)
        if search:
            pattern = (
                "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            )
            conds.append(
                "(" + " OR ".join(
                    f"{field(f)} LIKE ? ESCAPE '\\'" for f in SEARCHED_FIELDS
                ) + ")"
            )  # fmt: skip
            args.extend([pattern] * len(SEARCHED_FIELDS))
        cols = ", ".join(field(f) for f in INBOX_FIELDS)
        sql = f"SELECT seq, {cols} FROM messages"
        if conds:
            sql += " WHERE " + " AND ".join(conds)
        sql += " ORDER BY seq DESC LIMIT ?"
        rows: list[Any] = []
        cut = False
        with self.connection() as conn:
            if seconds is not None:
                stop = time.monotonic() + seconds
                # called every 1,000 SQLite steps; a true answer interrupts the query
                conn.set_progress_handler(lambda: time.monotonic() > stop, 1000)
            try:
                rows.extend(conn.execute(sql, (*args, limit)))  # rows already read stay
            except sqlite3.OperationalError as exc:
                if seconds is None or "interrupted" not in str(exc):
                    raise
                cut = True
            finally:
                if seconds is not None:
                    conn.set_progress_handler(None, 0)
        out = [(r[0], dict(zip(INBOX_FIELDS, r[1:], strict=False))) for r in rows]
        if cut:
            raise SearchCutShort(out)
        return out

    def delete(self, message_id: str) -> bool:
        """Remove one message; False if there was none with this id."""
        with self._write_lock, self.connection() as conn:
            self._forget(message_id)  # first: a failed delete leaves it to the database
            gone = conn.execute("DELETE FROM messages WHERE id = ?", (message_id,)).rowcount
            conn.execute("DELETE FROM attachments WHERE message_id = ?", (message_id,))
            self.changes += 1
        self._shrink.set()
        return gone > 0

    def clear(self) -> int:
        """Remove every message; returns how many there were."""
        with self._write_lock, self.connection() as conn:
            self._recent.clear()
            self._recent_chars = 0
            gone = conn.execute("DELETE FROM messages").rowcount
            conn.execute("DELETE FROM attachments")
            self.changes += 1
        self._shrink.set()
        return gone

    def pending(self) -> list[tuple[str, int]]:
        """Messages not done yet, oldest first, as (id, characters of the stored JSON
        text): resumed after a restart or a crash."""
        with self.connection() as conn:
            rows = conn.execute(
                "SELECT id, length(doc) FROM messages WHERE done = 0 ORDER BY seq"
            ).fetchall()
        return [(r[0], r[1]) for r in rows]

    def pending_ids(self) -> list[str]:
        """The ids of `pending`."""
        return [message_id for message_id, _ in self.pending()]

    def close(self) -> None:
        self._closing.set()
        self._checkpointer.join(5)
        with self._pool_lock:
            idle, self._pool = self._pool, []
        for conn in idle:
            conn.close()
