"""Running a batch (the orchestration): a reader, a pool of senders, and one collector
that journals outcomes. Results and the summary are in `results`, rows in doubt in
`recovery`, `--wait` in `wait`.

Threads, because the work is waiting on the network: the main thread streams and validates
rows, N workers send over one connection pool, and a collector appends each outcome to the
journal (fsynced) before the row counts as done and its result line is printed.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import IO, Any, Protocol

from outkit_cli.batch.journal import Journal, default_journal_path, peek_journal
from outkit_cli.batch.locks import InputLock, RowsLock, RunLock
from outkit_cli.batch.plan import BatchOptions, RowPlanner, Task
from outkit_cli.batch.recovery import resolve_in_doubt, settle_in_doubt
from outkit_cli.batch.results import ResultSink, Summary, plural, result_line
from outkit_cli.batch.rows import BatchInput, read_rows
from outkit_cli.batch.wait import wait_all
from outkit_cli.errors import (
    AuthError,
    MaybeSentError,
    OutkitError,
    OutputClosedError,
    RateLimitedError,
    UndeterminedLookupError,
    UnreachableError,
)
from outkit_cli.terminal import escape_controls

# Rows recorded as pending with one fsync, before any of them is sent.
CHUNK = 64
UNDETERMINED_HINT = "check it, then rerun with --resend-unknown to send it"
# Seconds within which a second SIGINT is the first one delivered twice (timeout(1)).
DUPLICATE_SIGNAL = 0.01


class BatchApi(Protocol):
    def create(self, message: Mapping[str, Any]) -> Mapping[str, Any]: ...
    def find(self, id_from_submitter: str, *, canary: bool = True) -> Mapping[str, Any] | None: ...
    def find_many(self, ids: list[str]) -> dict[str, Mapping[str, Any] | None]: ...
    def get(self, message_id: str) -> Mapping[str, Any]: ...


def run_batch(
    source: BatchInput,
    build: Callable[[Mapping[str, Any]], dict[str, Any]],
    api: BatchApi | None,
    opts: BatchOptions,
    *,
    on_progress: Callable[[Summary], None] | None = None,
    on_note: Callable[[str], None] | None = None,
    open_results: Callable[[], IO[str] | None] | None = None,
) -> Summary:
    """Send every row of ``source`` exactly once. ``build`` merges a row into the command's
    defaults and validates it (raising UsageError); ``api`` is None only for a dry run;
    ``on_note`` is given a line for the user before sending starts (e.g. that this run
    continues an interrupted resend). ``open_results`` opens (and empties) the --results
    file: called only once every lock is held, so that a run refused because another
    holds them never touches the file that other run is writing.
    Raises UsageError when the input file is locked by another run (whatever its journal),
    or the journal cannot be used (locked by another run, not a journal, unwritable),
    before anything is sent."""
    summary = Summary()
    started = time.monotonic()

    def make_sink() -> ResultSink:
        out = open_results() if open_results is not None else None
        sink = ResultSink(out or opts.results or sys.stdout, summary, journalled=not opts.dry_run)
        sink.keep_ids = opts.wait
        return sink

    journal_path = opts.journal or default_journal_path(source.path, source.fingerprint)
    if opts.dry_run:
        sink = make_sink()
        rows = RowPlanner(build, opts, peek_journal(journal_path), {}, sink)
        for item in read_rows(source):
            task = rows.task(item)
            if task is not None:
                sink.emit(task.line, "valid", ifs=task.ifs)
        summary.elapsed = time.monotonic() - started
        summary.dry_run = True
        sink.flush()
        return summary
    assert api is not None
    # the input, its rows, then the journal, in every run: no two runs wait on each other
    held: list[RunLock] = []
    try:
        if source.file_id is not None:
            held.append(InputLock(source.name, source.file_id, wait_lock=opts.wait_lock))
        if opts.rows_key is not None:
            held.append(RowsLock(source.name, opts.rows_key, wait_lock=opts.wait_lock))
        journal = Journal(journal_path, source.name, wait_lock=opts.wait_lock)
        try:
            sink = make_sink()  # every lock is held: the results file is this run's
            return _send_all(source, build, api, opts, journal, sink, on_progress, on_note, started)
        finally:
            journal.close()
    finally:
        for lock in reversed(held):
            lock.close()


def _send_all(
    source: BatchInput,
    build: Callable[[Mapping[str, Any]], dict[str, Any]],
    api: BatchApi,
    opts: BatchOptions,
    journal: Journal,
    sink: ResultSink,
    on_progress: Callable[[Summary], None] | None,
    on_note: Callable[[str], None] | None,
    started: float,
) -> Summary:
    summary = sink.summary
    state = journal.state
    summary.journal = journal.path
    summary.rerun = not state.is_new()
    summary.expected = opts.expected_rows
    rows = RowPlanner(build, opts, state, {}, sink)
    journal.start_run(rows.generation)
    summary.resend_generation = rows.generation
    if rows.continuing and on_note is not None:
        g = rows.generation
        on_note(
            f"resend: continuing the resend (generation {g}, ids ending -r{g}) that an "
            "earlier run started and did not finish: rows it sent are not sent again; "
            "once it has finished, --resend starts a new one"
        )
    stop = threading.Event()
    run = _Run(api, journal, sink, summary, opts, on_progress, stop)
    # before the lookups of rows left in doubt: a Ctrl-C there stops the run like one
    # during the sending (summary, exit 130), not with a bare "Aborted."
    previous = _install_sigint(stop, summary.resume_hint(), summary)
    try:
        if state.in_doubt and on_note is not None:
            on_note(
                f"looking up {plural(len(state.in_doubt), 'row')} an earlier run left "
                "unfinished (in flight, or queued when it stopped) before sending anything"
            )
        rows.unknown, rows.recheck = resolve_in_doubt(
            state, api, journal, opts.concurrency, stop, STOPS_BATCH, run.abort
        )
        run.start()
        try:
            chunk: list[Task] = []
            for item in read_rows(source):
                if stop.is_set() or run.aborted.is_set():
                    break
                task = rows.task(item)
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
            settle_in_doubt(run.in_doubt, api, run.send, run.record, opts.settle_rounds)
            # every row had its turn: a later --resend starts a new generation
            journal.finish(rows.generation)
    finally:
        # after a Ctrl-C the batch's handler stays: a second one while the run winds down
        # (the rows in flight can finish within the 40 ms between two presses) still
        # quits at once with exit 130, not by the signal in the middle of the summary
        if not stop.is_set():
            _restore_sigint(previous)
    summary.interrupted = stop.is_set()
    summary.changed = rows.changed_lines()
    if run.abort_error is not None:
        # printed on stderr as it is (batch.command): it may name a file or quote a server
        summary.aborted = escape_controls(run.abort_error.message)
        summary.output_closed = isinstance(run.abort_error, OutputClosedError)
        summary.abort_hint = _abort_hint(run.abort_error)
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


def _abort_hint(exc: OutkitError) -> str:
    """What to do after the batch stopped on ``exc`` (after "the batch was stopped")."""
    if isinstance(exc, UnreachableError):
        return ": run it again once the API answers"
    if isinstance(exc, RateLimitedError):
        return ": run it again later, or with a lower --rate"
    return ""


# Failures every later request would meet too, each after its own retries (a dead API:
# ~43 s a row; a 429 asking for 2 minutes: 2 minutes a row): the first stops the batch.
# Nothing was sent by the request that failed so.
STOPS_BATCH = (AuthError, UnreachableError, RateLimitedError)


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
        # set by a worker when the queue drops below a chunk: dispatch() sleeps on it
        # instead of polling (a wake-up every 2 ms took CPU from the workers)
        self._room = threading.Event()
        self.outcomes: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.aborted = threading.Event()
        self.abort_error: OutkitError | None = None
        self.in_doubt: list[Task] = []
        self._noting = threading.Lock()
        self._workers = [
            threading.Thread(target=self._work, name=f"outkit-batch-{i}", daemon=True)
            for i in range(max(1, opts.concurrency))
        ]
        self._collector = threading.Thread(target=self._collect, name="outkit-batch-journal")

    def abort(self, exc: OutkitError) -> None:
        """Stop the batch on ``exc`` (one of STOPS_BATCH): rows in flight finish, the rest
        stay for the rerun (journalled pending, or not read yet)."""
        with self._noting:
            if not self.aborted.is_set():
                self.abort_error = exc
                self.aborted.set()

    def start(self) -> None:
        self._collector.start()
        for w in self._workers:
            w.start()

    def dispatch(self, chunk: list[Task], stop: threading.Event) -> None:
        # wait while a chunk is still queued: memory stays flat and workers never run dry
        while self.tasks.qsize() >= CHUNK:
            if stop.is_set() or self.aborted.is_set():
                return
            self._room.clear()
            if self.tasks.qsize() >= CHUNK:
                # the timeout only bounds how late a stop is seen
                self._room.wait(0.1)
        self.journal.pending((t.line, t.identity, t.ifs) for t in chunk)
        if stop.is_set() or self.aborted.is_set():
            # recorded as pending but never sent: the rerun's lookup finds nothing and
            # sends them then
            return
        self._look_up(chunk)
        if self.aborted.is_set():
            return  # pending, never sent: the rerun looks them up
        for task in chunk:
            self.tasks.put(task)

    def _look_up(self, chunk: list[Task]) -> None:
        """Ask the server, in one request per chunk, which of its rows an earlier run whose
        journal is gone already sent; a row then needs no request of its own. When that
        request fails, each row asks on its own before it is sent, as without this."""
        wanted = [t for t in chunk if t.lookup and t.ifs]
        if not wanted:
            return
        try:
            found = self.api.find_many([t.ifs for t in wanted if t.ifs])
        except STOPS_BATCH as exc:
            # each row's own lookup would meet it again, after its own retries
            self.abort(exc)
            return
        except OutkitError:
            return
        for task in wanted:
            if task.ifs in found:  # settled: found, or certainly not on the server
                task.lookup = False
                task.found = found[task.ifs]

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
            if not self._room.is_set() and self.tasks.qsize() < CHUNK:
                self._room.set()
            if task is None:
                return
            if self.aborted.is_set() or self.stop.is_set():
                continue  # queued, not in flight: left for the rerun (journalled pending)
            self.outcomes.put(self.send(task))

    def send(self, task: Task) -> dict[str, Any]:
        """Send one row (after looking it up, when the journal cannot tell whether an
        earlier run sent it); returns its outcome."""
        base = {"row": task.line, "id_from_submitter": task.ifs, "key": task.identity}
        if task.found is not None:  # sent by a run whose journal is gone
            return {**base, "status": "skipped", "id": task.found.get("id")}
        if task.lookup and task.ifs:
            # until its lookup answers, a failure leaves the row as unchecked as it was:
            # the rerun must look it up again (`record`), not send it on trust
            base["recheck"] = True
        try:
            if task.lookup and task.ifs:
                try:
                    found = self.api.find(task.ifs)
                except UndeterminedLookupError as exc:
                    # sent before from elsewhere? nobody can tell: not sent unless asked
                    with self._noting:
                        self.summary.undetermined += 1
                        self.summary.undetermined_reason = exc.reason
                    if not self.opts.resend_unknown:
                        why = f"not sent: {exc.message}; {UNDETERMINED_HINT}"
                        return {**base, "status": "unknown", "error": why, "code": exc.exit_code}
                    found = None
                except OutkitError as exc:
                    exc.message = f"not sent: looking for it on the server failed: {exc.message}"
                    raise
                if found is not None:  # sent by a run whose journal is gone
                    return {**base, "status": "skipped", "id": found.get("id")}
                base.pop("recheck", None)
                task.lookup = False  # looked up: a resend (recovery) asks again itself
            task.sent_at = time.monotonic()
            data = self.api.create(task.message)
        except MaybeSentError as exc:
            return {**base, "status": "in_doubt", "error": exc.message, "task": task}
        except STOPS_BATCH as exc:
            self.abort(exc)
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
        self.journal.result_lines((o["key"], text) for o, text in settled)
        recheck = [
            (o["row"], o["key"], o["id_from_submitter"])
            for o, _ in settled
            if o.get("recheck") and o["status"] == "failed"
        ]
        if recheck:
            # not sent because the lookup failed: pending again, so that the rerun looks
            # them up (recovery) before sending, as the first run meant to
            self.journal.pending(recheck)
        for o, text in settled:
            self.sink.emit_line(text, o["status"], id=o.get("id"), code=o.get("code"))
        if self.on_progress is not None:
            self.on_progress(self.summary)


# What stops a batch like a first Ctrl-C: SIGINT (Ctrl-C) and SIGTERM (what timeout(1),
# systemd and cron's killers send). The exit status is then 128 + the signal's number.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _install_sigint(
    stop: threading.Event, resume: str = "", summary: Summary | None = None
) -> dict[int, Any]:
    """SIGINT (Ctrl-C) and SIGTERM stop taking new rows; rows in flight finish and are
    journalled, and the run ends with its summary (exit 128 + the signal's number:
    ``summary.stop_signal``). A second signal quits at once: the journal already holds
    every row handed out as pending (so the rerun looks those up) and every outcome as
    soon as it is known; nothing else needs to be saved, and ending the process there
    (os._exit) cannot hang on a worker thread or print an interpreter traceback.
    Returns the handlers replaced, for `_restore_sigint`."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    from outkit_cli.terminal import current

    tty = current().stderr_tty
    first: list[float] = []

    def handler(signum: int, frame: Any) -> None:
        now = time.monotonic()
        if stop.is_set():
            # GNU timeout sends its signal to the command and then to its process group:
            # one signal delivered twice within microseconds is not a second Ctrl-C
            if first and now - first[0] < DUPLICATE_SIGNAL:
                return
            _quit_now(tty, resume, 128 + signum)
        first.append(now)
        if summary is not None:
            summary.stop_signal = signum
        stop.set()
        # on a terminal, end the line the progress bar (and the echoed ^C) is on
        lead = "\n" if tty else ""
        name = "" if signum == signal.SIGINT else f" ({signal.Signals(signum).name})"
        _say(f"{lead}stopping{name}: finishing the rows in flight (Ctrl-C again to quit)\n")

    previous: dict[int, Any] = {}
    for signum in STOP_SIGNALS:
        if signal.getsignal(signum) is signal.SIG_IGN:
            # started with the signal ignored (`cmd &` in a script ignores SIGINT, nohup):
            # it stays ignored, in every phase of the run, as the shell meant
            continue
        previous[signum] = signal.signal(signum, handler)
    return previous


def _quit_now(tty: bool, resume: str = "", status: int = 130) -> None:
    show_cursor = "\x1b[?25h" if tty else ""  # the progress bar hides it
    lead = f"{show_cursor}\n" if tty else ""
    _say(
        f"{lead}interrupted again: quitting now; run the same command again to send the rest"
        f"{resume} (rows in flight are looked up first)\n"
    )
    os._exit(status)


def _say(text: str) -> None:
    # straight to the file descriptor: sys.stderr's buffer may be held by the thread the
    # signal interrupted (a reentrant write would raise)
    with contextlib.suppress(OSError):
        os.write(2, text.encode())


def _restore_sigint(previous: dict[int, Any]) -> None:
    for signum, handler in previous.items():
        if handler is not None:  # None: installed from outside Python, cannot be put back
            signal.signal(signum, handler)
