"""The background worker: takes submitted message ids and runs the lifecycle on them.

It knows nothing of the app: it is given the function that loads a message and the one
that moves messages through the lifecycle (`SandboxApp.process_many`), so the two modules
do not import each other.

It takes what is queued, up to `batch` messages at a time, and hands them over together:
the app saves those it finished in one SQLite transaction, which costs about as much as
saving one (bench/bench_sandbox.py). A message is saved only once it is done, so a crash
or a stop before that leaves it pending in the database, and it is processed again on the
next start; when only one message is queued, it is handed over alone, without waiting for
others.

It gives way to the API. The worker shares the process (and its one GIL) with the HTTP
front end, so every message it moves on while requests are being handled slows their
answers. While the front end has requests in hand (`Activity`), the worker waits for
`QUIET` seconds without any, but never longer than `MAX_DELAY` after its last batch: under a
steady stream of requests it still takes a batch at least that often (up to `batch`
messages each time), and once the stream stops it catches up at full speed. A message sent
alone, with nothing else going on, is taken at once.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

Doc = dict[str, Any]
RETRY_SECONDS = 1.0
BATCH = 32  # messages taken at once, at most (about 10-20 ms of work)
QUIET = 0.01  # seconds without requests after which the worker goes on
MAX_DELAY = 0.1  # seconds after its last batch after which it goes on, requests or not
# What the queue and a batch may hold. Under a flood of creates the worker falls behind (it
# gives way to requests), and each queued doc holds a message's parsed data: in Python
# objects up to 24 times its JSON text (`[{},{},...]`: 3 characters, a 72-byte dict). Past
# either bound only the id is queued, and the message is read back when its turn comes;
# a batch stops at BATCH_CHARS of JSON text (at least one message). Counted in characters
# of the stored text (attacker trial: 1,000 docs of 1.2 MB each were bound for 21 GB).
MAX_QUEUED_DOCS = 1000
MAX_QUEUED_CHARS = 2 * 1024 * 1024
BATCH_CHARS = 1024 * 1024


class Activity:
    """Requests in the HTTP front end's hands: `begin` and `end` around each one, called
    from the event loop's thread only (server.py); the worker reads `quiet_for`."""

    __slots__ = ("_count", "_since")

    def __init__(self) -> None:
        self._count = 0
        self._since = 0.0  # time.monotonic() when the count last fell to 0

    def begin(self) -> None:
        self._count += 1

    def end(self) -> None:
        self._count -= 1
        if not self._count:
            self._since = time.monotonic()

    def quiet_for(self) -> float:
        """Seconds since the last request ended, 0.0 while there is one."""
        if self._count:
            return 0.0
        return time.monotonic() - self._since


class Worker:
    def __init__(
        self,
        *,
        process: Callable[[list[Doc]], Any],
        load: Callable[[str], Doc | None],
        log: Callable[[str], Any] = lambda line: None,
        batch: int = BATCH,
        activity: Activity | None = None,
    ) -> None:
        """`process(docs)` runs the lifecycle of each message of the list and saves those
        done (raising OSError or sqlite3.Error when the disk or the database fails);
        `load(id)` reads a stored message (None when there is none); `log` takes one line
        about a failure; `batch` is the most messages handed to `process` at once;
        `activity`, the requests the worker gives way to (none: it never waits)."""
        self._process = process
        self._load = load
        self._log = log
        self._batch = max(1, batch)
        self._activity = activity
        self._last_batch = 0.0  # time.monotonic() when the last batch ended
        # (id, doc or None, characters of its stored text); None: stop
        self._queue: queue.SimpleQueue[tuple[str, Doc | None, int] | None] = queue.SimpleQueue()
        self._held_chars = 0  # of the docs in the queue
        # taken from the queue but left for the next batch (it did not fit): worker only
        self._carry: tuple[str, Doc | None, int] | None = None
        self._held_lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sandbox-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, message_id: str, doc: Doc | None = None, *, size: int = 0) -> None:
        """Queue a message; `size` is the length of its stored JSON text (characters).
        With its `doc` as just stored, the worker need not read it back, unless the queue
        holds MAX_QUEUED_DOCS or MAX_QUEUED_CHARS already: then only the id is kept."""
        if doc is not None:
            with self._held_lock:
                if (
                    self._queue.qsize() < MAX_QUEUED_DOCS
                    and self._held_chars + size <= MAX_QUEUED_CHARS
                ):
                    self._held_chars += size
                else:
                    doc = None
        self._queue.put((message_id, doc, size))

    def stop(self, timeout: float = 5.0) -> None:
        """Finish the messages in hand; the rest stays pending and resumes on next start."""
        if self._thread.is_alive():
            self._stopping.set()
            self._queue.put(None)
            self._thread.join(timeout)

    def _take(self) -> list[tuple[str, Doc | None, int]] | None:
        """The next messages queued (waiting for the first, then for its turn), up to
        `batch` of them and BATCH_CHARS of text, or None when stopping."""
        item, self._carry = self._carry, None
        if item is None:
            item = self._queue.get()
        if item is not None:
            self._wait_turn()
        items = []
        chars = 0
        while item is not None and not self._stopping.is_set():
            if item[1] is not None:
                with self._held_lock:
                    self._held_chars -= item[2]
            items.append(item)
            chars += item[2]
            if len(items) >= self._batch or chars >= BATCH_CHARS:
                return items
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return items
            if item is not None and chars + item[2] > BATCH_CHARS:
                self._carry = item  # the first of the next batch
                return items
        return None  # stopping: what was taken stays pending in the database

    def _wait_turn(self) -> None:
        """Return once the front end has had no request for QUIET seconds, or MAX_DELAY
        seconds after the last batch ended, or when stopping."""
        if self._activity is None:
            return
        deadline = self._last_batch + MAX_DELAY
        while True:
            quiet = self._activity.quiet_for()
            left = deadline - time.monotonic()
            if quiet >= QUIET or left <= 0:
                return
            if self._stopping.wait(min(QUIET - quiet, left)):
                return

    def _run(self) -> None:
        while True:
            items = self._take()
            if items is None:
                return
            ids = [message_id for message_id, _, _ in items]
            try:
                docs = []
                for message_id, doc, _ in items:
                    if doc is None:
                        doc = self._load(message_id)
                    if doc is not None and not doc["done"]:
                        docs.append(doc)
                if docs:
                    self._process(docs)
            except (OSError, sqlite3.Error) as exc:
                # a full or failing disk: the messages not saved stay pending and are tried
                # again (read back, so those saved before the failure are skipped), and the
                # worker goes on by itself once space is freed
                self._log(f"storage error on message {ids[0]}"
                          f"{f' and {len(ids) - 1} more' if len(ids) > 1 else ''}: "
                          f"{type(exc).__name__}: {exc}")  # fmt: skip
                if not self._stopping.wait(RETRY_SECONDS):
                    for message_id, _, size in items:
                        self._queue.put((message_id, None, size))
            self._last_batch = time.monotonic()
