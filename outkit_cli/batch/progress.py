"""The progress bar a person sees on stderr during a batch (never when stderr is no TTY)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import IO, Any

from outkit_cli.batch.results import Summary


@contextlib.contextmanager
def batch_progress(
    raw: IO[bytes] | None, total_bytes: int | None, enabled: bool | None = None
) -> Iterator[Callable[[Summary], None] | None]:
    """Yields a progress callback, or None when there is nothing to draw.

    Progress is the share of the input file read so far (rows are streamed, so their
    number is unknown until the end); the counts come from the summary.
    """
    if enabled is None:
        from outkit_cli.terminal import current

        enabled = current().stderr_tty
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from outkit_cli.output import stderr_console

    started = time.monotonic()
    columns: list[Any] = [
        TextColumn("sending"),
        BarColumn(),
        TextColumn("{task.fields[counts]}"),
        TextColumn("{task.fields[rate]}"),
    ]
    if total_bytes:
        columns.append(TimeRemainingColumn())
    with Progress(*columns, console=stderr_console(), transient=False) as progress:
        task = progress.add_task("batch", total=total_bytes or None, counts="", rate="")
        last = [0.0]

        def update(summary: Summary) -> None:
            now = time.monotonic()
            if now - last[0] < 0.1:
                return
            last[0] = now
            c = summary.counts
            done = c["accepted"] + c["skipped"]
            failed = c["failed"] + c["invalid"] + c["unknown"]
            rate = c["accepted"] / (now - started) if now > started else 0.0
            completed = None
            if raw is not None and total_bytes:
                with contextlib.suppress(OSError, ValueError):
                    completed = raw.tell()
            progress.update(
                task,
                completed=completed,
                counts=f"{done} done, {failed} failed",
                rate=f"{rate:.0f}/s",
            )

        yield update
