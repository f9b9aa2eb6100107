"""`outkit send --batch FILE`: wiring the batch runner to the client and the terminal."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from outkit_cli.batch.rows import FORMATS
from outkit_cli.errors import UsageError
from outkit_cli.fsutil import open_private

if TYPE_CHECKING:  # the runner (threads, signals) loads only when a batch runs
    from outkit_cli.batch.runner import BatchOptions

# A batch meets rate limits as a matter of course: without --retries, give each row more
# attempts than a single send gets (every worker already waits out each Retry-After).
BATCH_DEFAULT_RETRIES = 10


def batch_options(func: Any) -> Any:
    """The options `send` takes only with --batch."""
    opts = [
        click.option(
            "--batch",
            "batch",
            metavar="FILE",
            help="Send a message per row of a CSV (header row) or JSON Lines file ('-': stdin); "
            "the other options are defaults each row inherits.",
        ),
        click.option(
            "--format",
            "batch_format",
            type=click.Choice(FORMATS),
            help="--batch input format [default: from the extension].",
        ),
        click.option(
            "--concurrency",
            type=click.IntRange(1, 64),
            metavar="N",
            default=4,
            show_default=True,
            help="--batch: requests in flight at once.",
        ),
        click.option(
            "--results",
            "results_path",
            type=click.Path(dir_okay=False, path_type=Path),
            help="--batch: write the per-row JSON lines here instead of stdout.",
        ),
        click.option(
            "--journal",
            "journal_path",
            type=click.Path(dir_okay=False, path_type=Path),
            help="--batch: the journal that makes reruns skip sent rows "
            "[default: FILE.outkit-journal].",
        ),
        click.option(
            "--no-auto-id",
            is_flag=True,
            help="--batch: do not give rows without id_from_submitter one derived from the input.",
        ),
        click.option(
            "--resend-unknown",
            is_flag=True,
            help="--batch: send again rows whose earlier outcome could not be found out.",
        ),
    ]
    for opt in reversed(opts):
        func = opt(func)
    return func


class ClientBatchApi:
    """The three calls a batch makes, over one shared client (one pool, one backoff)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def create(self, message: Mapping[str, Any]) -> Mapping[str, Any]:
        """The created message; MaybeSentError when the answer was lost after sending."""
        from outkit_cli.message import request_body

        return self.client.create_message(
            request_body(message), id_from_submitter=message.get("id_from_submitter")
        ).data

    def find(self, id_from_submitter: str) -> Mapping[str, Any] | None:
        found = self.client.list_messages(id_from_submitter=id_from_submitter, limit=1).data
        return found[0] if found else None

    def get(self, message_id: str) -> Mapping[str, Any]:
        return self.client.get_message(message_id).data


def run_batch_command(
    app: Any,
    *,
    source: str,
    fmt: str | None,
    options: Mapping[str, Any],
    message_file: str | None,
    data_file: str | None,
    data_items: tuple[str, ...],
    opts: BatchOptions,
    results_path: Path | None,
    timeout: float | None,
    retries: int | None,
) -> int:
    """Run the batch; returns the exit code (0 when every row was accepted)."""
    from outkit_cli.batch.merge import merge_row
    from outkit_cli.batch.progress import batch_progress
    from outkit_cli.batch.rows import open_input
    from outkit_cli.batch.runner import run_batch
    from outkit_cli.message import Stdin, build_message

    settings = app.settings(timeout=timeout, retries=retries)
    stdin = Stdin()
    if source == "-":
        stdin.used_by = "--batch -"
    base = build_message(
        options=options,
        message_file=message_file,
        data_file=data_file,
        data_items=data_items,
        defaults={},
        stdin=stdin,
    )
    if "type" not in {k for k, v in options.items() if v is not None}:
        base.pop("type", None)  # each row may choose; email when none does
    profile_defaults = {
        "project": settings.project,
        "from": settings.from_,
        "backend": settings.backend,
    }

    def build(row: Mapping[str, Any]) -> dict[str, Any]:
        return merge_row(base, row, profile_defaults)

    results: IO[str] | None = None
    if results_path is not None:
        try:
            # never through a symlink, 0600, only a regular file of the user's (fsutil)
            fd = open_private(results_path, write=True, truncate=True)
            results = os.fdopen(fd, "w", encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write --results {results_path}: {exc.strerror}") from None
    opts.results = results
    batch_input = open_input(source, fmt)
    client = None
    try:
        api = None
        if not opts.dry_run:
            from outkit_cli.client import Client

            if "retries" not in settings.sources:
                settings.retries = BATCH_DEFAULT_RETRIES
            client = Client(settings, pool_size=opts.concurrency, fast=True)
            api = ClientBatchApi(client)
        raw = None if batch_input.path is None else batch_input.raw
        total = _size(batch_input.path)
        with batch_progress(raw, total) as on_progress:
            summary = run_batch(batch_input, build, api, opts, on_progress=on_progress)
    finally:
        batch_input.close()
        if client is not None:
            client.close()
        if results is not None:
            try:
                results.close()  # flushes the last lines: a full disk shows here
            except OSError as exc:
                raise UsageError(
                    f"cannot write the results to {results_path}: {exc.strerror or exc} (the "
                    "journal has them: run the same command again to see them)"
                ) from None
    click.echo(summary.line(), err=True)
    if summary.aborted:
        click.echo(f"error: {summary.aborted}; the batch was stopped", err=True)
    if summary.interrupted:
        return 130
    return summary.exit_code


def _size(path: Path | None) -> int | None:
    if path is None:
        return None
    try:
        return path.stat().st_size
    except OSError:
        return None


def check_batch_combinations(
    *, batch: str | None, machine: bool, quiet: bool, curl: bool, given: Mapping[str, Any]
) -> None:
    """Options that only make sense with --batch, or never with it."""
    if batch is None:
        batch_only = [f"--{k.replace('_', '-')}" for k, v in given.items() if v]
        if batch_only:
            raise UsageError(f"{batch_only[0]} goes with --batch FILE")
        return
    for flag, on in (("--json/--field", machine), ("-q/--quiet", quiet), ("--curl", curl)):
        if on:
            raise UsageError(f"{flag} cannot be used with --batch (it prints a JSON line per row)")
    if sys.stdin.isatty() and batch == "-":
        raise UsageError("--batch -: standard input is a terminal; pipe the rows in")
