"""`send --batch --wait`: after the batch, poll every accepted message until it is done."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from outkit_cli.batch.results import Summary
from outkit_cli.errors import ExitCode, OutkitError
from outkit_cli.message import is_failed
from outkit_cli.waiting import poll_delays

if TYPE_CHECKING:
    from outkit_cli.batch.runner import BatchApi


def wait_all(
    api: BatchApi, ids: list[str], *, wait_timeout: float, concurrency: int, summary: Summary
) -> None:
    """Poll every accepted message until done or `wait_timeout` seconds have passed,
    counting in `summary` how many were delivered, failed (ERROR_STATUSES) or not done.
    Polls are spaced like a single `send --wait` (waiting.poll_delays)."""
    deadline = time.monotonic() + wait_timeout
    pending = list(ids)
    delays = poll_delays()
    while pending and time.monotonic() < deadline:
        still: list[str] = []
        for message_id, message in _fetch_all(api, pending, concurrency):
            if message is None or not message.get("done"):
                still.append(message_id)
            elif is_failed(message):
                summary.ended_in_error += 1
            else:
                summary.delivered += 1
        pending = still
        if pending:
            time.sleep(min(next(delays), max(0.0, deadline - time.monotonic())))
    summary.still_pending = len(pending)
    summary.wait_reported = True
    if summary.ended_in_error:
        summary.fail(ExitCode.MESSAGE_FAILED)
    if summary.still_pending:
        summary.fail(ExitCode.WAIT_TIMEOUT)


def _fetch_all(
    api: BatchApi, ids: list[str], concurrency: int
) -> Iterator[tuple[str, Mapping[str, Any] | None]]:
    from concurrent.futures import ThreadPoolExecutor

    def one(message_id: str) -> tuple[str, Mapping[str, Any] | None]:
        try:
            return message_id, api.get(message_id)
        except OutkitError:
            return message_id, None

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        yield from pool.map(one, ids)
