"""`outkit send --batch FILE`: wiring the batch runner to the client and the terminal."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import click

from outkit_cli.batch.options import BatchRequest
from outkit_cli.batch.rows import ATTACHMENTS
from outkit_cli.diagnostics import warn
from outkit_cli.errors import (
    OUTPUT_CLOSED_EXIT,
    UndeterminedLookupError,
    UnverifiedLookupError,
    UsageError,
)
from outkit_cli.fsutil import OpenDirectory, open_private
from outkit_cli.message import MessageInput

# A batch meets rate limits as a matter of course: without --retries, give each row more
# attempts than a single send gets (every worker already waits out each Retry-After).
BATCH_DEFAULT_RETRIES = 10


# a list holding every message of 100 ids, duplicates of earlier runs included
LOOKUP_LIMIT = 1000
# ids per chunk lookup (repeated id_from_submitter parameters)
LOOKUP_CHUNK = 100
# seconds a row's lookup waits for the row let through first (lists_find's canary)
CANARY_WAIT = 120.0
# seconds lists_find keeps asking for the message it created before calling the list blind
VERIFY_SECONDS = 5.0


def unused_id() -> str:
    """An id_from_submitter nobody uses, shaped like a batch row's (`outkit-` and 24
    base32 characters), so that a server cannot tell the batch's checks from its lookups."""
    import base64
    import secrets

    return "outkit-" + base64.b32encode(secrets.token_bytes(15)).decode().lower()[:24]


# one row's lookup: its copies, or, from a server that ignores the filter but honours the
# limit, its newest messages, among which a row whose answer was lost moments ago
FIND_LIMIT = 100


def read_lookup(
    resp: Any, limit: int, filter_ignored: bool = False
) -> tuple[dict[str, Mapping[str, Any]], bool]:
    """What a list answer (`Client.list_messages`, asked by id_from_submitter with
    ``limit``) shows: the newest message found for each id asked for, and whether "not
    found" can be trusted for the others.

    It can only when the answer shows the server applied the filter and the list is whole:
    every message it listed is one asked for (``resp.listed``, counted before the client's
    own filter, equals what that filter kept), fewer than ``limit`` of them, no next page
    (a Link header with rel="next", RFC 8288), and the server was not seen ignoring the
    filter before (``filter_ignored``: a server that caps its unfiltered list at 50 may
    happen to list only messages asked for). The hosted API documents no filter on this
    list (reference/outkit-facts.md): a server that ignores it answers its newest
    messages, and a row's absence among them proves nothing."""
    found: dict[str, Mapping[str, Any]] = {}
    for message in resp.data:  # newest first
        found.setdefault(message["id_from_submitter"], message)
    honoured = resp.listed == len(resp.data)
    complete = resp.listed < limit and "next" not in resp.headers.get("Link", "")
    return found, honoured and complete and not filter_ignored


class ClientBatchApi:
    """The three calls a batch makes, over one shared client (one pool, one backoff)."""

    def __init__(
        self, client: Any, files_base: OpenDirectory | None = None, inline: bool = False
    ) -> None:
        files_base = files_base or _files_base(None)
        self.client = client
        self.files_base = files_base  # where a row's relative attachment paths start
        self.disposition = "inline" if inline else "attachment"
        self._probing = threading.Condition()
        self._filter_ignored: bool | None = None
        self._probe_id = unused_id()
        self._created: list[str] = []  # id_from_submitter of the first messages created here
        self._lists_find: bool | None = None  # lists_find, once known
        self._canary_out = False  # a row let through as absent before lists_find is known
        self._repeated: bool | None = None  # repeated_filter_applied, once known
        self._sample: list[str] | None = None  # id_from_submitter of the newest messages

    def create(self, message: Mapping[str, Any]) -> Mapping[str, Any]:
        """The created message; MaybeSentError when the answer was lost after sending.
        A row's `attachments` (paths, `;`-separated) go as a multipart create."""
        try:
            data = self._create(message)
        except BaseException:
            with self._probing:  # a canary that created nothing: the next row is one
                if not self._created:
                    self._canary_out = False
                    self._probing.notify_all()
            raise
        ifs = message.get("id_from_submitter")
        if ifs:
            with self._probing:
                if len(self._created) < 2:
                    self._created.append(ifs)
                    self._probing.notify_all()
        return data

    def _create(self, message: Mapping[str, Any]) -> Mapping[str, Any]:
        from outkit_cli.message import request_body

        form = None
        paths = message.get(ATTACHMENTS)
        if paths is not None:
            from outkit_cli import multipart

            message = {k: v for k, v in message.items() if k != ATTACHMENTS}
            # read now, each file opened once without following links: a file swapped
            # since the row was checked is this row's error (UsageError: `failed`)
            files = read_attachments(paths, self.files_base)
            form = multipart.encode(message, files, self.disposition)
        ifs = message.get("id_from_submitter")
        data = self.client.create_message(request_body(message), id_from_submitter=ifs, form=form)
        return data.data

    def find(self, id_from_submitter: str, *, canary: bool = True) -> Mapping[str, Any] | None:
        """The newest message the server holds with this id_from_submitter, or None when it
        certainly holds none. Raises UndeterminedLookupError when its answer cannot show
        that (`read_lookup`, `lists_find`), and the client's errors when a request fails."""
        ignored = self.filter_ignored()
        resp = self.client.list_messages(id_from_submitter=id_from_submitter, limit=FIND_LIMIT)
        found, trusted = self._read(resp, FIND_LIMIT, ignored)
        if id_from_submitter in found:
            return found[id_from_submitter]
        if not trusted:
            raise self._undetermined(resp)
        if not self.lists_find(canary=canary):
            if self._lists_find is None:  # not known yet, and this row may not be the canary
                raise UnverifiedLookupError(
                    "not found, but whether lookups find what this run creates is not known "
                    "yet", reason="could not yet be checked",
                )  # fmt: skip
            raise self._blind()
        return None

    def find_many(self, ids: list[str]) -> dict[str, Mapping[str, Any] | None]:
        """What the server says of ``ids`` (id_from_submitter values): id -> its message, or
        None when the server certainly holds none. An id left out is unsettled (`find`
        decides for that row alone, asking for it by itself).

        One request per 100 ids, as repeated id_from_submitter parameters. Absence is
        believed from such an answer only when it listed none of them, the answer is whole
        (`read_lookup`) and the server was seen applying every value of a repeated
        parameter (`repeated_filter_applied`). An answer that lists some of them may have
        been cut at a page size of the server's own, below the limit asked and with no
        next page (attacker trial 2: a cap of 50 made 20 rows of every copy look unsent):
        its other ids are left to `find`.
        """
        settled: dict[str, Mapping[str, Any] | None] = {}
        ignored = self.filter_ignored()
        for start in range(0, len(ids), LOOKUP_CHUNK):
            part = ids[start : start + LOOKUP_CHUNK]
            resp = self.client.list_messages(id_from_submitter=part, limit=LOOKUP_LIMIT)
            found, trusted = self._read(resp, LOOKUP_LIMIT, ignored)
            for ifs, message in found.items():
                settled.setdefault(ifs, message)
            if found or not trusted:
                continue
            if self.lists_find(await_canary=True) and self.repeated_filter_applied():
                for ifs in part:
                    settled.setdefault(ifs, None)
        return settled

    def repeated_filter_applied(self) -> bool:
        """Whether the server applies every value of a repeated id_from_submitter parameter.
        The sandbox does; a web framework that keeps only the first or the last value, or
        the first few, answers for those alone, and every other id asked for would look
        absent (attacker trials 2 and 3: rows sent twice). Checked once per run with an
        id_from_submitter the server holds (one of its newest messages', else one this run
        created): asked for first and then last among 99 ids nobody uses (as many values as
        a chunk lookup sends, shaped like the batch's own ids), it must be listed both
        times. Until such an id is known: False (rows are looked up one by one). Raises the
        client's errors when a request fails (asked again next time)."""
        with self._probing:
            if self._repeated is not None:
                return self._repeated
            sample = self._sample
        if sample is None:
            newest = self.client.list_messages(limit=FIND_LIMIT)
            sample = [m["id_from_submitter"] for m in newest.data if m.get("id_from_submitter")]
            with self._probing:
                self._sample = sample
        with self._probing:
            known = (sample or self._created)[:1]
        if not known:
            return False
        fillers = [unused_id() for _ in range(LOOKUP_CHUNK - 1)]
        applied = True
        for asked in ([known[0], *fillers], [*fillers, known[0]]):
            resp = self.client.list_messages(id_from_submitter=asked, limit=LOOKUP_LIMIT)
            applied = applied and any(m["id_from_submitter"] == known[0] for m in resp.data)
        with self._probing:
            self._repeated = applied
        return applied

    def filter_ignored(self) -> bool:
        """Whether the server ignores the id_from_submitter filter, found out once per run
        by asking for an id nobody uses: a server that applies the filter lists nothing.
        (An empty answer also comes from a server that holds no message at all, where
        "not found" is true whatever the filter; later answers can still show it ignored.)
        Raises the client's errors when the request fails (asked again next time)."""
        with self._probing:
            if self._filter_ignored is None:
                resp = self.client.list_messages(id_from_submitter=self._probe_id, limit=1)
                self._filter_ignored = resp.listed > 0
            return self._filter_ignored

    def lists_find(self, *, canary: bool = False, await_canary: bool = False) -> bool:
        """Whether an empty answer can be believed: a lookup of the first message this run
        created must have found it. A server whose list answers nothing whatever it holds
        (a list scoped to something else, a stub) cannot be told from one that holds
        nothing until then (attacker trial 3: every copy of a file sent its first 64 rows
        again). So until a message is created, `canary=True` (a row's own lookup) lets one
        row at a time through as absent: it is sent, and the others wait until its message
        is looked up; without it (chunk lookups), False, or with `await_canary` the
        answer once a row let through is created (a chunk looked up while the first
        chunk's canary is out need not go row by row). Raises the client's errors when
        the request fails."""
        waited = 0.0
        with self._probing:
            while True:
                if self._lists_find is not None:
                    return self._lists_find
                if self._created:
                    known = self._created[0]
                    break
                if waited >= CANARY_WAIT:
                    return False
                if not self._canary_out:
                    if not canary:
                        return False
                    self._canary_out = True
                    return True
                if not (canary or await_canary):
                    return False
                self._probing.wait(1.0)
                waited += 1.0
        # a list served from a replica shows a message a moment after it was stored: ask
        # again for a few seconds before calling it blind
        deadline = time.monotonic() + VERIFY_SECONDS
        while True:
            resp = self.client.list_messages(id_from_submitter=known, limit=FIND_LIMIT)
            works = any(m["id_from_submitter"] == known for m in resp.data)
            if works or time.monotonic() >= deadline:
                break
            time.sleep(0.5)
        with self._probing:
            self._lists_find = works
            self._probing.notify_all()
        return works

    def _read(
        self, resp: Any, limit: int, ignored: bool
    ) -> tuple[dict[str, Mapping[str, Any]], bool]:
        found, trusted = read_lookup(resp, limit, ignored)
        with self._probing:
            if resp.listed != len(resp.data):
                self._filter_ignored = True
        return found, trusted

    def _host(self) -> str:
        return urlsplit(self.client.base_url).netloc or self.client.base_url

    def _undetermined(self, resp: Any) -> UndeterminedLookupError:
        """Why a lookup's answer cannot show that a message is absent."""
        if self._filter_ignored or resp.listed != len(resp.data):
            return UndeterminedLookupError(
                f"the server at {self._host()} ignores the id_from_submitter filter (it lists "
                "other messages): whether it holds this one cannot be told",
                reason="ignores the id_from_submitter filter of GET /messages",
            )
        return UndeterminedLookupError(
            f"the server at {self._host()} cut its list short ({resp.listed} messages, or a "
            "next page): whether it holds this one cannot be told",
            reason="cut its lists of messages short",
        )

    def _blind(self) -> UndeterminedLookupError:
        return UndeterminedLookupError(
            f"the server at {self._host()} does not list a message this run created "
            f"(id_from_submitter {self._created[0] if self._created else '?'}): its empty "
            "answers cannot be believed",
            reason="does not list messages it holds",
        )

    def get(self, message_id: str) -> Mapping[str, Any]:
        return self.client.get_message(message_id).data


def run_batch_command(
    app: Any,
    message: MessageInput,
    request: BatchRequest,
    *,
    dry_run: bool,
    wait: bool,
    wait_timeout: float,
    timeout: float | None,
    retries: int | None,
    inline: bool = False,
    **_: Any,
) -> int:
    """The batch path of `send`: run it; returns the exit code (0 when every row was
    accepted). The options of the single-message path (--curl, -q) were refused before."""
    from outkit_cli.batch.identity import BatchKey
    from outkit_cli.batch.plan import BatchOptions
    from outkit_cli.batch.progress import batch_progress
    from outkit_cli.batch.recovery import SETTLE_ROUNDS
    from outkit_cli.batch.rows import BadRow, Row, count_rows, open_input, spool_stdin
    from outkit_cli.batch.runner import run_batch

    settings = app.settings(timeout=timeout, retries=retries)
    if "retries" not in settings.sources:
        settings.retries = BATCH_DEFAULT_RETRIES
    files = _files_base(request.source)  # one handle for checking and reading files
    defaults, build = _row_builder(message, request, settings, files)
    opts = BatchOptions(
        concurrency=request.concurrency,
        dry_run=dry_run,
        auto_id=not request.no_auto_id,
        resend_unknown=request.resend_unknown,
        resend=request.resend,
        wait=wait,
        wait_timeout=wait_timeout,
        wait_lock=request.wait_lock or 0.0,
        journal=request.journal_path,
        defaults=defaults,
        # a resend follows a lookup that did not find the row: as safe as a retry of a
        # request never sent, so it gets the retry budget (a server that keeps failing)
        settle_rounds=max(SETTLE_ROUNDS, int(settings.retries)),
    )
    assert request.source is not None
    batch_input = open_input(
        request.source, request.format, encoding=request.encoding, delimiter=request.delimiter
    )
    spooled = None
    if batch_input.path is None:
        from outkit_cli.batch.locks import spool_dir

        batch_input, spooled = spool_stdin(batch_input, spool_dir())
    try:
        # read ahead: a bad header or byte stops the batch before anything is sent (or a
        # dry run before any row is called valid), and the progress bar gets a true total;
        # a run also learns its rows' key, which copies of the file share (RowsLock)
        key = None if dry_run else BatchKey(defaults)

        def each(item: Row | BadRow) -> None:
            if key is not None and isinstance(item, Row):
                key.add(item.fields)

        readable = batch_input.path or spooled
        assert readable is not None
        total = count_rows(readable, batch_input, each)
        opts.expected_rows = total
        opts.rows_key = key.hexdigest() if key is not None else None
    finally:
        if spooled is not None:
            spooled.unlink(missing_ok=True)  # the input keeps it open until it is read
    _check_results_path(request.results_path, batch_input.path, request.journal_path)
    # opened (and emptied) by the runner once it holds every lock: a run refused because
    # another run holds them must leave that run's results file alone
    results = _ResultsFile(request.results_path)
    client = None
    limiter = None
    try:
        api = None
        if not opts.dry_run:
            from outkit_cli.client import Client
            from outkit_cli.http.ratelimit import RateLimiter

            limiter = RateLimiter(batch_rate(request.rate, settings))
            client = Client(settings, pool_size=opts.concurrency, limiter=limiter)
            api = ClientBatchApi(client, files, inline)
        with batch_progress(total) as progress:
            summary = run_batch(
                batch_input,
                build,
                api,
                opts,
                on_progress=progress.update,
                on_note=progress.note,
                open_results=results.open,
            )
            if limiter is not None:
                summary.traffic = limiter.snapshot().describe()
            progress.finish(summary)
    finally:
        batch_input.close()
        files.close()
        if client is not None:
            client.close()
        results.close()
    click.echo(summary.line(), err=True)
    if summary.undetermined:
        warn(_undetermined_warning(summary, settings.api_url, request.resend_unknown))
    if summary.output_closed:
        click.echo(f"batch stopped: {summary.aborted}", err=True)
        return OUTPUT_CLOSED_EXIT
    if summary.aborted:
        click.echo(f"error: {summary.aborted}; the batch was stopped{summary.abort_hint}", err=True)
    if summary.interrupted:
        # 128 + the signal's number, as the shell reports a process the signal ended:
        # 130 for Ctrl-C (SIGINT), 143 for SIGTERM (timeout(1), systemd, cron's killers)
        return 128 + (summary.stop_signal or 2)
    return summary.exit_code


def _undetermined_warning(summary: Any, api_url: str, resend_unknown: bool) -> str:
    """The risk a run without a journal takes when lookups cannot tell (docs/batch.md,
    "A server that ignores the filter")."""
    from outkit_cli.batch.results import plural

    host = urlsplit(api_url).netloc or api_url
    why = summary.undetermined_reason
    rows = plural(summary.undetermined, "row")
    done = f"{rows} sent without that check (--resend-unknown)"
    if not resend_unknown:
        done = f"{rows} not sent (unknown): check them, then rerun with --resend-unknown"
    return (
        f"the server at {host} {why}: rows sent before from elsewhere (another "
        f"machine, a run whose journal was lost) cannot be detected; {done}"
    )


def batch_rate(rate: float | None, settings: Any) -> float | None:
    """Messages per second from --rate, else the profile's ``rate``; None: adapt."""
    from outkit_cli.http.ratelimit import MAX_FIXED_RATE, MIN_FIXED_RATE

    where = "--rate" if rate is not None else f"rate from {settings.sources.get('rate')}"
    value = rate if rate is not None else settings.rate
    if value is not None and not MIN_FIXED_RATE <= value <= MAX_FIXED_RATE:  # also NaN
        raise UsageError(
            f"{where} must be a number of messages per second from {MIN_FIXED_RATE:g} "
            f"to {MAX_FIXED_RATE:g}"
        )
    return value


def _row_builder(
    message: MessageInput, request: BatchRequest, settings: Any, files_base: OpenDirectory
) -> tuple[dict[str, Any], Callable[[Mapping[str, Any]], dict[str, Any]]]:
    """What every row inherits from the command (before the profile's defaults), and the
    function that merges a row into it and checks it (UsageError)."""
    from outkit_cli.batch.merge import merge_row
    from outkit_cli.message import Stdin

    stdin = Stdin()
    if request.source == "-":
        stdin.used_by = "--batch -"
    base = message.build(defaults={}, stdin=stdin)
    if "type" not in message.given():
        base.pop("type", None)  # each row may choose; email when none does
    profile_defaults = {
        "project": settings.project,
        "from": settings.from_,
        "backend": settings.backend,
    }

    def build(row: Mapping[str, Any]) -> dict[str, Any]:
        msg = merge_row(base, row, profile_defaults)
        if ATTACHMENTS in msg:
            # found before anything is sent: the row is reported, not half sent
            if msg.get("type") != "email":
                raise UsageError("column attachments: only emails carry attachments")
            check_attachments(msg[ATTACHMENTS], files_base)
        return msg

    return base, build


def attachment_names(paths: str) -> list[str]:
    """The paths of an `attachments` cell: separated by `;`, blanks dropped."""
    return [name for name in (raw.strip() for raw in paths.split(";")) if name]


def check_attachments(paths: str, base: OpenDirectory) -> None:
    """Check, before anything is sent, that every file of an `attachments` cell can be
    opened as read_attachments will open it. Raises UsageError naming the first that
    cannot or is over the attachment limits (the row is then `invalid`)."""
    fds = []
    try:
        for name in attachment_names(paths):
            fds.append((_open_attachment(name, base), f"column attachments: {name}"))
        _check_sizes(fds)
    finally:
        for fd, _ in fds:
            os.close(fd)


def _check_sizes(files: list[tuple[int, str]]) -> None:
    from outkit_cli import multipart

    try:
        # fstat of the open files, before any is read
        multipart.check_sizes(files, "column attachments")
    except OSError as exc:
        raise UsageError(f"column attachments: {exc.strerror or exc}") from None


def read_attachments(paths: str, base: OpenDirectory) -> list[Any]:
    """The files of an `attachments` cell (multipart.AttachedFile, types guessed from the
    names), each read from the one descriptor fsutil.open_beneath opened.

    Rows are untrusted: a name is relative to the input file's directory `base` (the working
    directory for stdin), opened once when the batch starts, and may not leave it (absolute,
    `..`) nor go through a symbolic link, even one pointing inside: a link checked once can
    be retargeted before it is read; the directory itself swapped for a link mid-run is not
    followed either (`OpenDirectory`). Raises UsageError naming the file for those and for
    any file that cannot be read (OSError), so that a row's file is that row's error, never
    the run's."""
    from outkit_cli import multipart

    files = []
    names = attachment_names(paths)
    fds: list[tuple[int, str]] = []
    try:
        for name in names:
            fds.append((_open_attachment(name, base), f"column attachments: {name}"))
        _check_sizes(fds)
        for (fd, who), name in zip(fds, names, strict=True):
            try:
                with os.fdopen(os.dup(fd), "rb") as fh:
                    data = multipart.read_bounded(fh, who)
            except OSError as exc:
                raise UsageError(
                    f"column attachments: cannot read {name}: {exc.strerror}"
                ) from None
            filename = name.rsplit("/", 1)[-1]
            kind = multipart.guess_type(filename)
            files.append(multipart.AttachedFile(filename, kind, data, name))
    finally:
        for fd, _ in fds:
            os.close(fd)
    return files


def _open_attachment(name: str, base: OpenDirectory) -> int:
    from outkit_cli.fsutil import OUTSIDE, UnsafeFileError

    try:
        return base.open(name)
    except UnsafeFileError as exc:
        if exc.strerror == OUTSIDE:
            raise UsageError(
                f"column attachments: {name} is outside the input file's directory {base.path}"
            ) from None
        raise UsageError(f"column attachments: {name} is {exc.strerror}") from None
    except OSError as exc:
        raise UsageError(f"column attachments: cannot read {name}: {exc.strerror or exc}") from None


def _files_base(source: str | None) -> OpenDirectory:
    """The directory a row's attachment names start from, opened once for the whole run:
    the input file's (the working directory for stdin)."""
    return OpenDirectory(
        Path.cwd() if source in (None, "-") else Path(str(source)).resolve().parent
    )


def _check_results_path(results: Path | None, source: Path | None, journal: Path | None) -> None:
    """--results is emptied before it is written: never the input or the journal."""
    if results is None:
        return
    from outkit_cli.batch.journal import default_journal_path

    named = {"the --batch input": source}
    if source is not None:
        named["the journal"] = journal or default_journal_path(source, "")
    elif journal is not None:
        named["the journal"] = journal
    for what, other in named.items():
        if other is not None and (
            os.path.abspath(results) == os.path.abspath(other) or _same_file(results, other)
        ):
            raise UsageError(f"--results {results} is {what}: give the results their own file")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


class _ResultsFile:
    """The --results file, opened (emptied) only when the runner calls ``open``: after it
    holds every lock, so that a run that fails before starting (a lock held by another
    run, a journal it cannot use) leaves an existing file as it was."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.handle: IO[str] | None = None

    def open(self) -> IO[str] | None:
        if self.path is None:
            return None
        try:
            # never through a symlink, 0600, only a regular file of the user's (fsutil)
            fd = open_private(self.path, write=True, truncate=True)
        except OSError as exc:
            raise UsageError(f"cannot write --results {self.path}: {exc.strerror}") from None
        self.handle = os.fdopen(fd, "w", encoding="utf-8")
        return self.handle

    def close(self) -> None:
        if self.handle is None:
            return
        try:
            self.handle.close()  # flushes the last lines: a full disk shows here
        except OSError as exc:
            raise UsageError(
                f"cannot write the results to {self.path}: {exc.strerror or exc} (the "
                "journal has them: run the same command again to see them)"
            ) from None
