"""A deadline for a whole request (connect, send, every byte of the answer).

Socket timeouts bound each read, so a server trickling one byte a second never trips
them. One watchdog thread per process keeps the deadlines of the requests in flight; at a
request's deadline it shuts down the sockets of the connections that request used, which
ends any blocked connect, handshake, send or read at once. The request's thread then sees
``Watch.expired`` and reports a timeout.

The connection classes in `transport.py` attach themselves to the calling thread's current
watch (`attach`): on creating a socket and on every request.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import socket
import threading
import time
from typing import Any

# A done watch stays in the heap until it reaches the top; past this many, finishing a
# watch pops the done ones on top so a long batch keeps the heap small.
_TIDY_AT = 256


class Watch:
    """One request's deadline and the sockets it runs on."""

    __slots__ = ("_socks", "deadline", "done", "expired")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.expired = False
        self.done = False
        self._socks: list[socket.socket] = []


class Watchdog:
    """The deadlines of requests in flight, in one heap served by one daemon thread."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Watch]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._local = threading.local()

    def start(self, seconds: float) -> Watch:
        """A watch expiring ``seconds`` from now, current for this thread until `finish`."""
        watch = Watch(time.monotonic() + seconds)
        with self._cond:
            heapq.heappush(self._heap, (watch.deadline, next(self._seq), watch))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="outkit-deadline",
                                                daemon=True)  # fmt: skip
                self._thread.start()
            elif self._heap[0][2] is watch:
                self._cond.notify()
        self._local.watch = watch
        return watch

    def finish(self, watch: Watch) -> None:
        self._local.watch = None
        with self._cond:
            watch.done = True
            watch._socks.clear()
            if len(self._heap) > _TIDY_AT:
                while self._heap and self._heap[0][2].done:
                    heapq.heappop(self._heap)

    def attach(self, sock: socket.socket | None) -> None:
        """Put ``sock`` under the calling thread's current watch (if any)."""
        watch: Watch | None = getattr(self._local, "watch", None)
        if watch is None or sock is None:
            return
        with self._cond:
            if watch.done:
                return
            if watch.expired:
                _shut(sock)
            elif sock not in watch._socks:
                watch._socks.append(sock)

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                while self._heap and (self._heap[0][2].done or self._heap[0][0] <= now):
                    _, _, watch = heapq.heappop(self._heap)
                    if not watch.done:
                        watch.expired = True
                        for sock in watch._socks:
                            _shut(sock)
                self._cond.wait(self._heap[0][0] - now if self._heap else None)


def _shut(sock: Any) -> None:
    # shutdown, not close: the descriptor stays valid for the thread blocked on it, which
    # then sees end-of-file or a reset instead of waiting out the trickle
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


WATCHDOG = Watchdog()
