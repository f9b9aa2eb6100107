"""`--wait`: poll a message until it is done, with backoff and a deadline.

The spinner is drawn on stderr, and only when stderr is a terminal, so stdout stays
parseable and logs of cron jobs stay clean.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TextIO

from outkit_cli.errors import MessageFailedError, OutkitError, WaitTimeoutError
from outkit_cli.message import is_failed

FIRST_DELAY = 0.2
MAX_DELAY = 2.0
GROWTH = 1.5


def poll_delays(first: float = FIRST_DELAY, cap: float = MAX_DELAY) -> Iterator[float]:
    """0.2 s, 0.3 s, 0.45 s, ... up to 2 s between polls."""
    delay = first
    while True:
        yield delay
        delay = min(cap, delay * GROWTH)


# Braille frames, one cell wide; redrawn this often (seconds).
_FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
_FRAME_INTERVAL = 0.1
# ECMA-48: CR to column 0, then EL (erase in line, 2 = the whole line)
CLEAR_LINE = "\r\x1b[2K"


@contextlib.contextmanager
def spinner(
    label: str, enabled: bool | None = None, stream: TextIO | None = None
) -> Iterator[Callable[[str], None]]:
    """Yields update(status); draws a one-line spinner on stderr only on a TTY.

    Each frame is drawn as CLEAR_LINE + text + CR, so the cursor waits at column 0: a line
    another process writes to the same terminal (the sandbox's request log) starts at the
    left edge instead of running on from the spinner's text. On the way out, however it
    ends, the line is cleared (CLEAR_LINE) before anything else is printed. No cursor
    movement up or down: a line written by someone else cannot shift what gets erased.
    """
    if enabled is None:
        from outkit_cli.terminal import current

        enabled = current().stderr_tty
    if not enabled:
        yield lambda status: None
        return
    import threading

    from outkit_cli.terminal import one_line

    out = stream if stream is not None else sys.stderr
    text = [one_line(label)]
    stop = threading.Event()
    lock = threading.Lock()

    def draw(frame: int) -> None:
        with lock:
            if stop.is_set() and frame:
                return
            try:
                out.write(f"{CLEAR_LINE}{_FRAMES[frame % len(_FRAMES)]} {text[0]}\r")
                out.flush()
            except (OSError, ValueError):  # the terminal went away (closed, hung up)
                stop.set()

    def spin() -> None:
        frame = 0
        while not stop.wait(_FRAME_INTERVAL):
            frame += 1
            draw(frame)

    def update(status: str) -> None:
        text[0] = one_line(f"{label} ({status})")

    draw(0)
    thread = threading.Thread(target=spin, name="outkit-spinner", daemon=True)
    thread.start()
    try:
        yield update
    finally:
        stop.set()
        thread.join()
        with lock, contextlib.suppress(OSError, ValueError):
            out.write(CLEAR_LINE)
            out.flush()


def wait_until_done(
    client: Any,
    message: Mapping[str, Any],
    *,
    deadline: float,
    show_spinner: bool | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[dict[str, Any], bool]:
    """Poll until ``done``. Returns (last message seen, whether the deadline passed first)."""
    from outkit_cli.client import DeadlineReached

    current = dict(message)
    if current.get("done"):
        return current, False
    message_id = str(current.get("id"))
    with spinner(f"waiting for {message_id}", show_spinner) as update:
        update(str(current.get("status")))
        for delay in poll_delays():
            remaining = deadline - clock()
            if remaining <= 0:
                return current, True
            sleep(min(delay, remaining))
            try:
                current = client.get_message(message_id, deadline=deadline).data
            except DeadlineReached:
                return current, True
            update(str(current.get("status")))
            if current.get("done"):
                return current, False
    raise AssertionError("unreachable")  # pragma: no cover - poll_delays never ends


def outcome_error(
    message: Mapping[str, Any], timed_out: bool, wait_timeout: float
) -> OutkitError | None:
    """The exit for a waited-on message: None (done and fine), 9 (error status), 10 (time)."""
    from outkit_cli.client import answer_text

    message_id = answer_text(message.get("id"))
    status = answer_text(message.get("status"))
    if timed_out:
        return WaitTimeoutError(
            f"message {message_id} not done after {wait_timeout:g} s (status {status}); "
            f"`outkit get {message_id} --wait` waits again"
        )
    if is_failed(message):
        reason = answer_text(message.get("status_message")) or "no reason given"
        return MessageFailedError(f"message {message_id} ended in {status}: {reason}")
    return None
