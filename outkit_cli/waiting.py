"""`--wait`: poll a message until it is done, with backoff and a deadline.

The spinner is drawn on stderr, and only when stderr is a terminal, so stdout stays
parseable and logs of cron jobs stay clean.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

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


@contextlib.contextmanager
def spinner(label: str, enabled: bool | None = None) -> Iterator[Callable[[str], None]]:
    """Yields update(status); draws a rich spinner on stderr only on a TTY."""
    if enabled is None:
        from outkit_cli.terminal import current

        enabled = current().stderr_tty
    if not enabled:
        yield lambda status: None
        return
    from outkit_cli.output import stderr_console

    with stderr_console().status(label) as status_view:
        yield lambda status: status_view.update(f"{label} ({status})")


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
    message_id = message.get("id")
    status = message.get("status")
    if timed_out:
        return WaitTimeoutError(
            f"message {message_id} not done after {wait_timeout:g} s (status {status}); "
            f"`outkit get {message_id} --wait` waits again"
        )
    if is_failed(message):
        reason = message.get("status_message") or "no reason given"
        return MessageFailedError(f"message {message_id} ended in {status}: {reason}")
    return None
