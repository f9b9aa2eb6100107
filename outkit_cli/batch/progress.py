"""The progress bar a person sees on stderr during a batch (never when stderr is no TTY)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

from outkit_cli.batch.results import Summary

# Redraws at most this often (seconds): drawing costs CPU the batch needs for sending.
REDRAW_EVERY = 0.1


class _NoProgress:
    def update(self, summary: Summary) -> None:
        pass

    def note(self, text: str) -> None:
        import click

        click.echo(text, err=True)

    def finish(self, summary: Summary) -> None:
        pass


class _Bar:
    """Rows reported so far out of the rows the file holds (counted before sending), the
    accepted rate and the time left; the last frame shows the final counts."""

    def __init__(self, progress: Any, task: Any) -> None:
        self._progress = progress
        self._task = task
        self._lock = threading.Lock()
        self._last = 0.0
        self._started = time.monotonic()

    def update(self, summary: Summary) -> None:
        now = time.monotonic()
        if now - self._last < REDRAW_EVERY:
            return
        self._last = now
        self._draw(summary, now)

    def note(self, text: str) -> None:
        """A line for the user, printed above the bar."""
        with self._lock:
            self._progress.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def finish(self, summary: Summary) -> None:
        """The last frame: the same counts as the summary line."""
        self._draw(summary, time.monotonic())

    def _draw(self, summary: Summary, now: float) -> None:
        c = summary.counts
        done = c["accepted"] + c["skipped"] + c["valid"]
        failed = c["failed"] + c["invalid"] + c["unknown"]
        elapsed = now - self._started
        rate = c["accepted"] / elapsed if elapsed > 0 else 0.0
        with self._lock:
            self._progress.update(
                self._task,
                completed=sum(c.values()),
                counts=f"{done} done, {failed} failed",
                rate=f"{rate:.0f}/s",
            )


@contextlib.contextmanager
def batch_progress(total_rows: int | None, enabled: bool | None = None) -> Iterator[Any]:
    """Yields an object with update(summary) (throttled) and finish(summary).

    `total_rows` is the number of rows counted before sending (None for stdin, which can
    be read only once: the bar then shows counts without a total or time left).
    """
    if enabled is None:
        from outkit_cli.terminal import current

        enabled = current().stderr_tty
    if not enabled:
        yield _NoProgress()
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from outkit_cli.output import stderr_console

    columns: list[Any] = [TextColumn("sending"), BarColumn(), MofNCompleteColumn()]
    columns += [TextColumn("{task.fields[counts]}"), TextColumn("{task.fields[rate]}")]
    if total_rows:
        columns.append(TimeRemainingColumn())
    # no redirection of stdout: the result lines must reach stdout (a file, a pipe), not
    # the terminal the bar is drawn on
    progress_view = Progress(
        *columns,
        console=stderr_console(),
        transient=False,
        redirect_stdout=False,
        redirect_stderr=False,
    )
    with progress_view as progress:
        task = progress.add_task("batch", total=total_rows or None, counts="", rate="")
        yield _Bar(progress, task)
