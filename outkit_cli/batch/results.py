"""A batch's results: the JSON line per row, where it goes, and the summary counts."""

from __future__ import annotations

import json
import os
import sys
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from outkit_cli.errors import OutkitError, OutputClosedError, UsageError
from outkit_cli.terminal import escape_controls


@dataclass
class Summary:
    counts: Counter[str] = field(default_factory=Counter)
    exit_code: int = 0
    elapsed: float = 0.0
    journal: Path | None = None
    interrupted: bool = False
    stop_signal: int = 0  # the signal that interrupted the run (SIGINT, SIGTERM); 0: none
    delivered: int = 0
    ended_in_error: int = 0
    still_pending: int = 0
    wait_reported: bool = False
    aborted: str | None = None  # why the batch stopped early (e.g. credentials rejected)
    abort_hint: str = ""  # what to do about it, after "the batch was stopped"
    output_closed: bool = False  # stdout's reader went away (`| head`): exit 141
    traffic: str | None = None  # requests, 429s, retries, pace (http.ratelimit.RateStats)
    dry_run: bool = False
    rerun: bool = False  # the journal had earlier runs
    changed: list[int] = field(default_factory=list)  # lines sent before with other content
    resend_generation: int = 0  # the --resend generation this run sends (0: none)
    expected: int = 0  # rows the input holds, when counted ahead (0: not known)

    def resume_hint(self) -> str:
        """What "run the same command again" does after an interruption, when this run
        sends a resend generation (it continues it, --resend or not)."""
        g = self.resend_generation
        if not g:
            return ""
        return f" (it continues this resend, ids ending -r{g}: no row is sent a third time)"

    # rows whose lookup could not tell whether they were sent before (UndeterminedLookupError)
    undetermined: int = 0
    undetermined_reason: str = ""  # why, as UndeterminedLookupError.reason

    def fail(self, code: int) -> None:
        # the highest failure code wins: it is the most severe class in docs/exit-codes.md
        self.exit_code = max(self.exit_code, int(code))

    def line(self) -> str:
        """The summary printed on stderr at the end (and drawn by the last progress frame)."""
        c = self.counts
        total = sum(c.values())
        parts = [f"{c[k]} {k}" for k in ("accepted", "skipped", "valid") if c[k]]
        parts += [f"{c[k]} {k}" for k in ("invalid", "failed", "unknown") if c[k]]
        rate = c["accepted"] / self.elapsed if self.elapsed > 0 else 0.0
        rows = plural(total, "row")
        if self.expected > total and (self.interrupted or self.aborted):
            rows = f"{total} of {plural(self.expected, 'row')}"  # stopped early: how far
        text = f"batch: {rows}: {', '.join(parts) or 'nothing to do'}"
        text += f" in {self.elapsed:.1f}s"
        if c["accepted"]:
            text += f" ({rate:.0f}/s)"
        if self.rerun or c["skipped"]:
            text += f"; {c['skipped']} already sent, {c['accepted']} new or changed"
            if self.changed:
                text += f" (changed: {_lines(self.changed)})"
        if self.wait_reported:
            text += f"; after waiting: {self.delivered} done, {self.ended_in_error} failed" + (
                f", {self.still_pending} not done" if self.still_pending else ""
            )
        if self.traffic:
            text += f"; {self.traffic}"
        if self.interrupted:
            text += (
                f"; interrupted: run the same command again to send the rest{self.resume_hint()}"
            )
        if self.dry_run:
            text += "; dry run: nothing was sent"
        if self.journal is not None:
            text += f"; journal {escape_controls(str(self.journal))}"  # a path from outside
        return text


def plural(n: int, word: str) -> str:
    """`1 row`, `2 rows`."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _lines(lines: list[int], shown: int = 10) -> str:
    head = ", ".join(str(n) for n in sorted(lines)[:shown])
    more = f" and {len(lines) - shown} more" if len(lines) > shown else ""
    return f"{'line' if len(lines) == 1 else 'lines'} {head}{more}"


def result_line(line: int, status: str, id: str | None, error: str | None, ifs: str | None) -> str:
    """One row's result as the JSON object printed (and journalled)."""
    return json.dumps(
        {"row": line, "id": id, "status": status, "error": error, "id_from_submitter": ifs},
        ensure_ascii=False,
    )


class ResultSink:
    """Writes one JSON line per row (stdout or --results) and counts outcomes."""

    def __init__(self, out: IO[str], summary: Summary, *, journalled: bool = True) -> None:
        self._out = out
        self._journalled = journalled  # False for a dry run: no journal holds the results
        self.summary = summary
        self._lock = threading.Lock()
        self.accepted_ids: list[str] = []
        self.keep_ids = False

    def emit(
        self,
        line: int,
        status: str,
        *,
        id: str | None = None,
        error: str | None = None,
        ifs: str | None = None,
        code: int | None = None,
    ) -> None:
        self.emit_line(result_line(line, status, id, error, ifs), status, id=id, code=code)

    def emit_line(self, text: str, status: str, *, id: str | None, code: int | None) -> None:
        with self._lock:
            self.summary.counts[status] += 1
            if code:
                self.summary.fail(code)
            if self.keep_ids and id and status in ("accepted", "skipped"):
                self.accepted_ids.append(id)
            try:
                self._out.write(text + "\n")
            except OSError as exc:
                raise self._write_error(exc) from None

    def flush(self) -> None:
        with self._lock:
            try:
                self._out.flush()
            except OSError as exc:
                raise self._write_error(exc) from None

    def _write_error(self, exc: OSError) -> OutkitError:
        # e.g. a full disk under --results or stdout: the journal holds every outcome,
        # so a rerun reports the rows sent as skipped, with their ids
        name = getattr(self._out, "name", None)
        where = name if isinstance(name, str) and not name.startswith("<") else "stdout"
        if self._out is sys.stdout:
            # what is still buffered would fail again when Python exits, turning the exit
            # status into 120: let it go nowhere
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
                os.close(devnull)
            except (OSError, ValueError):
                pass
        if not self._journalled:
            if isinstance(exc, BrokenPipeError) and self._out is sys.stdout:
                # `--dry-run | head`: the reader has what it wanted and nothing was sent;
                # the entry point ends such a run quietly with exit 0
                raise exc
            return UsageError(
                f"cannot write the results to {where}: {exc.strerror or exc} (a dry run: "
                "nothing was sent)"
            )
        if isinstance(exc, BrokenPipeError) and self._out is sys.stdout:
            return OutputClosedError(
                "stdout was closed by its reader; the journal has every "
                "row sent: run the same command again to send the rest"
            )
        return UsageError(
            f"cannot write the results to {where}: {exc.strerror or exc} (the journal has "
            "them: run the same command again to see them)"
        )
