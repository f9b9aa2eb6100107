"""The background worker: takes submitted message ids and runs the lifecycle on each.

It knows nothing of the app: it is given the function that loads a message and the one
that moves it through the lifecycle (`SandboxApp.process`), so the two modules do not
import each other.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any

Doc = dict[str, Any]
RETRY_SECONDS = 1.0


class Worker:
    def __init__(
        self,
        *,
        process: Callable[[Doc], Any],
        load: Callable[[str], Doc | None],
        log: Callable[[str], Any] = lambda line: None,
    ) -> None:
        """`process(doc)` runs a message's lifecycle; `load(id)` reads a stored message
        (None when there is none); `log` takes one line about a failure."""
        self._process = process
        self._load = load
        self._log = log
        self._queue: queue.SimpleQueue[tuple[str, Doc | None] | None] = queue.SimpleQueue()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sandbox-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, message_id: str, doc: Doc | None = None) -> None:
        """Queue a message; with its `doc` as just stored, the worker need not read it back."""
        self._queue.put((message_id, doc))

    def stop(self, timeout: float = 5.0) -> None:
        """Finish the message in hand; the rest stays pending and resumes on next start."""
        if self._thread.is_alive():
            self._stopping.set()
            self._queue.put(None)
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None or self._stopping.is_set():
                return
            message_id, doc = item
            try:
                if doc is None:
                    doc = self._load(message_id)
                if doc is not None and not doc["done"]:
                    self._process(doc)
            except (OSError, sqlite3.Error) as exc:
                # a full or failing disk: the message stays pending and is tried again,
                # so the worker goes on by itself once space is freed
                self._log(f"storage error on message {message_id}: {type(exc).__name__}: {exc}")
                if not self._stopping.wait(RETRY_SECONDS):
                    self._queue.put((message_id, None))
