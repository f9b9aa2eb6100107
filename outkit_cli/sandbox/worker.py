"""The background worker: takes submitted message ids and runs the lifecycle on each."""

from __future__ import annotations

import queue
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from outkit_cli.sandbox.app import SandboxApp

_STOP = object()


class Worker:
    def __init__(self, app: SandboxApp) -> None:
        self.app = app
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sandbox-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, message_id: str, doc: dict[str, Any] | None = None) -> None:
        """Queue a message; with its `doc` as just stored, the worker need not read it back."""
        self._queue.put((message_id, doc))

    def stop(self, timeout: float = 5.0) -> None:
        """Finish the message in hand; the rest stays pending and resumes on next start."""
        if self._thread.is_alive():
            self._stopping.set()
            self._queue.put(_STOP)
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP or self._stopping.is_set():
                return
            message_id, doc = item  # type: ignore[misc]
            if doc is None:
                doc = self.app.store.get(message_id)
            if doc is not None and not doc["done"]:
                self.app.process(doc)
