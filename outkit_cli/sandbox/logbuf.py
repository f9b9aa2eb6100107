"""The sandbox's log (one line per request, plus errors), written in batches.

Writing each line as it comes cost a system call per request on the event loop's thread,
and every such call gives up the GIL to the worker threads: switching back and forth took
a fifth of the server's time per GET (bench/bench_sandbox.py). Lines are queued instead and
a background thread writes what has gathered in one write, at most `delay` seconds after
the first line of a batch. An idle server's thread sleeps until the next line.

The stdlib's logging handlers do not batch by time (QueueListener wakes its thread for every
record, MemoryHandler flushes only by count or level), so this small writer is our own.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import TextIO

from outkit_cli.terminal import escape_controls

DELAY = 0.02  # seconds a line may wait, to be written with the lines that follow it
# Lines waiting at most: a stderr nobody reads (a paused pager, a full pipe) blocks the
# writer, and the lines of a flood of requests must not fill the memory meanwhile.
MAX_QUEUED = 100_000


class BatchedLog:
    """A callable taking one line (str, without newline) for `stream`, thread-safe.

    Lines keep their order; `close()` writes what is queued and stops the thread (later lines
    are written at once). A stream that cannot be written (closed, EPIPE) loses the lines:
    a log must never take the server down. Past `max_queued` waiting lines (the stream
    blocks), further lines are counted, not kept, and the count is written when the
    stream takes lines again.
    """

    def __init__(self, stream: TextIO, delay: float = DELAY, max_queued: int = MAX_QUEUED) -> None:
        self._stream = stream
        self._delay = delay
        self._max_queued = max_queued
        self._dropped = 0
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="sandbox-log", daemon=True)
        self._thread.start()

    def __call__(self, line: str) -> None:
        with self._lock:
            if self._closed:
                self._write([line])
                return
            if len(self._lines) >= self._max_queued:
                self._dropped += 1
                return
            self._lines.append(line)
            first = len(self._lines) == 1
        if first:  # the writer sleeps until the first line of a batch, and only then
            self._wake.set()

    def close(self, timeout: float = 5.0) -> None:
        with self._lock:
            self._closed = True
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            self._wake.wait()
            with self._lock:
                closed = self._closed
            if not closed:
                # let the lines of the next few milliseconds join this write
                time.sleep(self._delay)
            with self._lock:
                lines, self._lines = self._lines, []
                if self._dropped:
                    lines.append(f"(log: {self._dropped} lines left out: stderr was not read)")
                    self._dropped = 0
                self._wake.clear()
                closed = self._closed
            self._write(lines)
            if closed:
                return

    def _write(self, lines: list[str]) -> None:
        if not lines:
            return
        with contextlib.suppress(OSError, ValueError):
            # controls escaped here, for every line: a log line names paths and quotes
            # requests, and the terminal must not act on them
            self._stream.write("".join(escape_controls(line) + "\n" for line in lines))
            self._stream.flush()
