"""Running a batch (the orchestration): a reader, a pool of senders, and one collector
that journals outcomes. Results and the summary are in `results`, rows in doubt in
`recovery`, `--wait` in `wait`.

Threads, because the work is waiting on the network: the main thread streams and validates
rows, N workers send over one connection pool, and a collector appends each outcome to the
journal (fsynced) before the row counts as done and its result line is printed.
"""

from __future__ import annotations

import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from outkit_cli.batch.journal import Journal, JournalState, default_journal_path, read_journal
from outkit_cli.batch.recovery import resolve_in_doubt, settle_in_doubt
from outkit_cli.batch.results import ResultSink, Summary, result_line
from outkit_cli.batch.rows import BadRow, BatchInput, Row, auto_id, read_rows
from outkit_cli.batch.wait import wait_all
from outkit_cli.errors import AuthError, ExitCode, MaybeSentError, OutkitError, UsageError

# Rows recorded as pending with one fsync, before any of them is sent.
CHUNK = 64


class BatchApi(Protocol):
    def create(self, message: Mapping[str, Any]) -> Mapping[str, Any]: ...
    def find(self, id_from_submitter: str) -> Mapping[str, Any] | None: ...
    def get(self, message_id: str) -> Mapping[str, Any]: ...


@dataclass
class BatchOptions:
    concurrency: int = 4
    dry_run: bool = False
    auto_id: bool = True
    resend_unknown: bool = False
    wait: bool = False
    wait_timeout: float = 60.0
    journal: Path | None = None
    results: IO[str] | None = None


@dataclass
class Task:
    line: int
    message: dict[str, Any]

    @property
    def ifs(self) -> str | None:
        return self.message.get("id_from_submitter")


def run_batch(
    source: BatchInput,
    build: Callable[[Mapping[str, Any]], dict[str, Any]],
    api: BatchApi | None,
    opts: BatchOptions,
    *,
    on_progress: Callable[[Summary], None] | None = None,
) -> Summary:
    """Send every row of ``source``. ``build`` merges a row into the command's defaults and
    validates it (raising UsageError); ``api`` is None only for a dry run."""
    summary = Summary()
    sink = ResultSink(opts.results or sys.stdout, summary, journalled=not opts.dry_run)
    sink.keep_ids = opts.wait
    started = time.monotonic()
    if opts.dry_run:
        _dry_run(source, build, opts, sink)
        summary.elapsed = time.monotonic() - started
        sink.flush()
        return summary
    assert api is not None
    journal_path = opts.journal or default_journal_path(source.path, source.fingerprint)
    state = read_journal(journal_path, source.fingerprint)
    journal = Journal(journal_path, source.fingerprint, source.name)
    summary.journal = journal_path
    unknown = resolve_in_doubt(state, api, journal, opts.concurrency)

    stop = threading.Event()
    run = _Run(api, journal, sink, summary, opts, on_progress, stop)
    previous = _install_sigint(stop)
    try:
        run.start()
        try:
            chunk: list[Task] = []
            for item in read_rows(source):
                if stop.is_set() or run.aborted.is_set():
                    break
                task = _prepare(item, source, build, opts, state, unknown, sink)
                if task is None:
                    continue
                chunk.append(task)
                if len(chunk) >= CHUNK:
                    run.dispatch(chunk, stop)
                    chunk = []
            if chunk and not stop.is_set() and not run.aborted.is_set():
                run.dispatch(chunk, stop)
        finally:
            # rows already handed out are finished and journalled, whatever stopped the loop
            run.finish()
        if not stop.is_set() and not run.aborted.is_set():
            settle_in_doubt(run.in_doubt, api, run.send, run.record)
    finally:
        _restore_sigint(previous)
        journal.close()
    summary.interrupted = stop.is_set()
    if run.abort_error is not None:
        summary.aborted = run.abort_error.message
        summary.fail(run.abort_error.exit_code)
    if opts.wait and not summary.interrupted and summary.aborted is None:
        wait_all(
            api,
            sink.accepted_ids,
            wait_timeout=opts.wait_timeout,
            concurrency=opts.concurrency,
            summary=summary,
        )
    summary.elapsed = time.monotonic() - started
    sink.flush()
    return summary


def _dry_run(
    source: BatchInput,
    build: Callable[[Mapping[str, Any]], dict[str, Any]],
    opts: BatchOptions,
    sink: ResultSink,
) -> None:
    for item in read_rows(source):
        if isinstance(item, BadRow):
            sink.emit(item.line, "invalid", error=item.error, code=ExitCode.USAGE)
            continue
        try:
            message = _build(item, source, build, opts)
        except UsageError as exc:
            sink.emit(item.line, "invalid", error=exc.message, code=ExitCode.USAGE)
            continue
        sink.emit(item.line, "valid", ifs=message.get("id_from_submitter"))


def _build(
    row: Row,
    source: BatchInput,
    build: Callable[[Mapping[str, Any]], dict[str, Any]],
    opts: BatchOptions,
) -> dict[str, Any]:
    message = build(row.fields)
    if opts.auto_id and not message.get("id_from_submitter"):
        message["id_from_submitter"] = auto_id(source.fingerprint, row.line)
    return message


def _prepare(
    item: Row | BadRow,
    source: BatchInput,
    build: Callable[[Mapping[str, Any]], dict[str, Any]],
    opts: BatchOptions,
    state: JournalState,
    unknown: dict[int, str | None],
    sink: ResultSink,
) -> Task | None:
    """The row's task, or None when the row is reported without sending."""
    if isinstance(item, BadRow):
        sink.emit(item.line, "invalid", error=item.error, code=ExitCode.USAGE)
        return None
    if item.line in state.accepted:
        sink.emit(item.line, "skipped", id=state.accepted[item.line], error=None)
        return None
    try:
        message = _build(item, source, build, opts)
    except UsageError as exc:
        sink.emit(item.line, "invalid", error=exc.message, code=ExitCode.USAGE)
        return None
    if item.line in unknown and not opts.resend_unknown:
        sink.emit(
            item.line,
            "unknown",
            error="an earlier run sent this row and its outcome could not be found out; "
            "check it, then rerun with --resend-unknown to send it again",
            ifs=message.get("id_from_submitter"),
            code=ExitCode.NETWORK,
        )
        return None
    return Task(item.line, message)


class _Run:
    """The worker pool and the collector for one batch."""

    def __init__(
        self,
        api: BatchApi,
        journal: Journal,
        sink: ResultSink,
        summary: Summary,
        opts: BatchOptions,
        on_progress: Callable[[Summary], None] | None,
        stop: threading.Event,
    ) -> None:
        self.api = api
        self.stop = stop
        self.journal = journal
        self.sink = sink
        self.summary = summary
        self.opts = opts
        self.on_progress = on_progress
        # a C queue, cheap per row; dispatch() keeps it to about two chunks, so workers
        # stay busy while the next chunk is read and journalled
        self.tasks: queue.SimpleQueue[Task | None] = queue.SimpleQueue()
        self.outcomes: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.aborted = threading.Event()
        self.abort_error: OutkitError | None = None
        self.in_doubt: list[Task] = []
        self._workers = [
            threading.Thread(target=self._work, name=f"outkit-batch-{i}", daemon=True)
            for i in range(max(1, opts.concurrency))
        ]
        self._collector = threading.Thread(target=self._collect, name="outkit-batch-journal")

    def start(self) -> None:
        self._collector.start()
        for w in self._workers:
            w.start()

    def dispatch(self, chunk: list[Task], stop: threading.Event) -> None:
        # wait while a chunk is still queued: memory stays flat and workers never run dry
        while self.tasks.qsize() >= CHUNK:
            if stop.is_set() or self.aborted.is_set():
                return
            time.sleep(0.002)
        self.journal.pending((t.line, t.ifs) for t in chunk)
        if stop.is_set() or self.aborted.is_set():
            # recorded as pending but never sent: the rerun's lookup finds nothing and
            # sends them then
            return
        for task in chunk:
            self.tasks.put(task)

    def finish(self) -> None:
        for _ in self._workers:
            self.tasks.put(None)
        for w in self._workers:
            w.join()
        self.outcomes.put(None)
        self._collector.join()

    def _work(self) -> None:
        while True:
            task = self.tasks.get()
            if task is None:
                return
            if self.aborted.is_set() or self.stop.is_set():
                continue  # queued, not in flight: left for the rerun (journalled pending)
            self.outcomes.put(self.send(task))

    def send(self, task: Task) -> dict[str, Any]:
        base = {"row": task.line, "id_from_submitter": task.ifs}
        try:
            data = self.api.create(task.message)
        except MaybeSentError as exc:
            return {**base, "status": "in_doubt", "error": exc.message, "task": task}
        except AuthError as exc:
            # every other row would fail the same way: stop the batch
            if not self.aborted.is_set():
                self.abort_error = exc
                self.aborted.set()
            return {**base, "status": "failed", "error": exc.message, "code": exc.exit_code}
        except OutkitError as exc:
            return {**base, "status": "failed", "error": exc.message, "code": exc.exit_code}
        except Exception as exc:  # a bug must not lose the journal of the other rows
            return {**base, "status": "failed", "error": repr(exc), "code": 1}
        return {**base, "status": "accepted", "id": data.get("id")}

    def _collect(self) -> None:
        done = False
        while not done:
            batch = [self.outcomes.get()]
            while True:
                try:
                    batch.append(self.outcomes.get_nowait())
                except queue.Empty:
                    break
            if None in batch:
                done = True
                batch = [o for o in batch if o is not None]
            try:
                self.record([o for o in batch if o is not None])
            except OutkitError as exc:
                # the journal cannot be written (disk full): stop the batch; the rows
                # were journalled as pending, so the rerun looks them up before sending
                if self.abort_error is None:
                    self.abort_error = exc
                self.aborted.set()

    def record(self, outcomes: list[dict[str, Any]]) -> None:
        settled = []
        for o in outcomes:
            if o["status"] == "in_doubt":
                self.in_doubt.append(o["task"])
            else:
                text = result_line(
                    o["row"], o["status"], o.get("id"), o.get("error"), o.get("id_from_submitter")
                )
                settled.append((o, text))
        # journalled (fsynced) before the rows count as done
        self.journal.result_lines(text for _, text in settled)
        for o, text in settled:
            self.sink.emit_line(text, o["status"], id=o.get("id"), code=o.get("code"))
        if self.on_progress is not None:
            self.on_progress(self.summary)


def _install_sigint(stop: threading.Event) -> Any:
    """Ctrl-C stops taking new rows; rows in flight finish and are journalled."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        stop.set()
        sys.stderr.write("\nstopping: finishing the rows in flight (Ctrl-C again to quit)\n")

    previous = signal.signal(signal.SIGINT, handler)
    return previous


def _restore_sigint(previous: Any) -> None:
    if previous is not None:
        signal.signal(signal.SIGINT, previous)
