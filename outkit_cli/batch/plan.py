"""Planning a batch: what happens to each row before anything is sent. A row is reported
at once (invalid, already sent, unknown) or becomes a `Task` to send, looked up on the
server first when the journal cannot tell whether an earlier run sent it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from outkit_cli.batch.identity import RowIdentities, sent_id
from outkit_cli.batch.journal import JournalState
from outkit_cli.batch.results import ResultSink
from outkit_cli.batch.rows import BadRow, Row
from outkit_cli.errors import ExitCode, UsageError


@dataclass
class BatchOptions:
    concurrency: int = 4
    dry_run: bool = False
    auto_id: bool = True
    resend_unknown: bool = False
    resend: bool = False  # send every row again, as new messages (a new generation)
    wait: bool = False
    wait_timeout: float = 60.0
    wait_lock: float = 0.0
    settle_rounds: int = 3  # lookups and resends of a row in doubt (recovery.settle_in_doubt)
    journal: Path | None = None
    rows_key: str | None = None  # the batch's content key (identity.BatchKey): its lock
    results: IO[str] | None = None
    # what every row inherits from the command: part of each row's identity
    defaults: Mapping[str, Any] = field(default_factory=dict)
    expected_rows: int = 0  # the input's row count when known ahead (sizes per-row tables)


@dataclass
class Task:
    line: int
    message: dict[str, Any]
    identity: str
    lookup: bool = False  # ask the server for it before sending (the journal is new)
    found: Mapping[str, Any] | None = None  # the server's message, found by a chunk's lookup
    sent_at: float = 0.0  # time.monotonic() of its latest POST (recovery.LIST_LAG)

    @property
    def ifs(self) -> str | None:
        return self.message.get("id_from_submitter")


class RowPlanner:
    """Turns rows into tasks, reporting those that are not sent (invalid, already sent,
    unknown); remembers what the summary says about a rerun."""

    def __init__(
        self,
        build: Callable[[Mapping[str, Any]], dict[str, Any]],
        opts: BatchOptions,
        state: JournalState,
        unknown: Mapping[str, str | None],
        sink: ResultSink,
    ) -> None:
        self.build = build
        self.opts = opts
        self.state = state
        self.unknown = unknown
        # rows left in flight whose lookup could not be checked yet: looked up when sent
        self.recheck: set[str] = set()
        self.sink = sink
        # --resend starts a new generation, unless the latest one was interrupted: then it
        # continues that one, as a rerun without --resend does (no row sent a third time)
        self.continuing = state.resend_open
        self.generation = state.generation + (1 if opts.resend and not self.continuing else 0)
        self.identities = RowIdentities(opts.defaults, self.generation, opts.expected_rows)
        self.changed: list[tuple[int, str]] = []  # (line, identity accepted there before)

    def task(self, item: Row | BadRow) -> Task | None:
        """The row's task, or None when the row is reported without sending."""
        if isinstance(item, BadRow):
            self.sink.emit(item.line, "invalid", error=item.error, code=ExitCode.USAGE)
            return None
        try:
            identity = self.identities.identity(item.line, item.fields)
        except ValueError as exc:
            self.sink.emit(item.line, "invalid", error=str(exc), code=ExitCode.USAGE)
            return None
        own = bool(item.fields.get("id_from_submitter"))
        ifs = sent_id(identity) if (own or self.opts.auto_id) else None
        if identity in self.state.accepted:
            self.sink.emit(item.line, "skipped", id=self.state.accepted[identity], ifs=ifs)
            return None
        try:
            message = self.build(item.fields)
        except UsageError as exc:
            self.sink.emit(item.line, "invalid", error=exc.message, ifs=ifs, code=ExitCode.USAGE)
            return None
        message.pop("id_from_submitter", None)
        if ifs is not None:
            message["id_from_submitter"] = ifs
        before = self.state.lines.get(item.line)
        if before is not None and before != identity:
            self.changed.append((item.line, before))
        if identity in self.unknown and not self.opts.resend_unknown:
            self.sink.emit(
                item.line,
                "unknown",
                error="whether this row was sent could not be found out (an earlier run "
                "lost its answer, or the server's lookup could not tell); check it, then rerun "
                "with --resend-unknown to send it",
                ifs=ifs,
                code=ExitCode.NETWORK,
            )
            return None
        # until a run has gone through every row (a first run, a lost journal, a first run
        # stopped halfway): the server may hold the row already; a resent row with its own
        # id would find its first copy, so not those
        lookup = (
            (not self.state.completed or identity in self.recheck)
            and ifs is not None
            and not (own and self.generation)
        )
        return Task(item.line, message, identity, lookup)

    def changed_lines(self) -> list[int]:
        """Lines whose row was sent before with other content that is now gone."""
        return [line for line, old in self.changed if not self.identities.present(old)]
