"""The options `send` takes only with --batch FILE, and the checks on combining them.

Loaded with `send` itself, so it stays light: click and the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import click

from outkit_cli.errors import UsageError

FORMATS = ("csv", "jsonl")


@dataclass
class BatchRequest:
    """What the batch options asked for; `source` is None when --batch was not given."""

    source: str | None
    format: str | None
    concurrency: int
    rate: float | None  # messages per second (--rate); None: the profile's, else adapt
    results_path: Path | None
    journal_path: Path | None
    no_auto_id: bool
    resend_unknown: bool
    resend: bool
    wait_lock: float | None
    delimiter: str | None
    encoding: str | None

    # option name on the command line -> attribute, for "goes with --batch FILE"
    ONLY_WITH_BATCH: ClassVar[dict[str, str]] = {
        "--batch-format": "format",
        "--rate": "rate",
        "--results": "results_path",
        "--journal": "journal_path",
        "--no-auto-id": "no_auto_id",
        "--resend-unknown": "resend_unknown",
        "--resend": "resend",
        "--wait-lock": "wait_lock",
        "--delimiter": "delimiter",
        "--encoding": "encoding",
    }

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> BatchRequest:
        """Take the batch options out of a command's parameters (they are removed)."""
        fmt, alias = params.pop("batch_format"), params.pop("batch_format_alias")
        if fmt and alias and fmt != alias:
            raise UsageError("--batch-format and --format disagree: give --batch-format only")
        return cls(
            source=params.pop("batch"),
            format=fmt or alias,
            concurrency=params.pop("concurrency"),
            rate=params.pop("rate"),
            results_path=params.pop("results_path"),
            journal_path=params.pop("journal_path"),
            no_auto_id=params.pop("no_auto_id"),
            resend_unknown=params.pop("resend_unknown"),
            resend=params.pop("resend"),
            wait_lock=params.pop("wait_lock"),
            delimiter=_delimiter(params.pop("delimiter")),
            encoding=params.pop("encoding"),
        )


def _delimiter(value: str | None) -> str | None:
    if value is None:
        return None
    if value.lower() in ("tab", "\\t"):
        return "\t"
    if len(value) != 1 or value in '"\r\n' or value.isalnum():
        raise UsageError(f"--delimiter {value!r}: give one character such as ',' ';' or 'tab'")
    return value


def batch_options(func: Any) -> Any:
    """The options `send` takes only with --batch (see BatchRequest)."""
    opts = [
        click.option(
            "--batch",
            "batch",
            metavar="FILE",
            help="Send a message per row of a CSV (header row) or JSON Lines file ('-': stdin); "
            "the other options are defaults each row inherits.",
        ),
        click.option(
            "--batch-format",
            "batch_format",
            type=click.Choice(FORMATS),
            help="--batch input format [default: from the extension].",
        ),
        # the old name, kept working for scripts; --format is meant for output formats
        click.option("--format", "batch_format_alias", type=click.Choice(FORMATS), hidden=True),
        click.option(
            "--concurrency",
            type=click.IntRange(1, 64),
            metavar="N",
            default=4,
            show_default=True,
            help="--batch: requests in flight at once.",
        ),
        click.option(
            "--rate",
            type=click.FloatRange(min=0, min_open=True),
            metavar="N",
            help="--batch: send at most N messages per second, spread evenly [profile: rate; "
            "default: as fast as the API allows, slowing down on 429 and probing back up].",
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
        click.option(
            "--resend",
            is_flag=True,
            help="--batch: send every row again, also those already sent, as new messages "
            "(new ids); a rerun after an interruption, with --resend or not, continues "
            "that resend.",
        ),
        click.option(
            "--wait-lock",
            type=click.FloatRange(min=0),
            metavar="SECONDS",
            help="--batch: when another run holds the journal, wait this long for it "
            "[default: exit 2 at once].",
        ),
        click.option(
            "--delimiter",
            metavar="CHAR",
            help="--batch CSV: the cell separator (',', ';' or 'tab') [default: from the header].",
        ),
        click.option(
            "--encoding",
            metavar="NAME",
            help="--batch: the file's text encoding, e.g. cp1252 (Excel on Windows) "
            "[default: utf-8].",
        ),
    ]
    for opt in reversed(opts):
        func = opt(func)
    return func


def check_batch_combinations(
    request: BatchRequest,
    *,
    machine: bool,
    quiet: bool,
    curl: bool,
    id_from_submitter: str | None = None,
    **_: Any,
) -> None:
    """Options that only make sense with --batch, or never with it."""
    if request.source is None:
        for flag, attr in BatchRequest.ONLY_WITH_BATCH.items():
            if getattr(request, attr):
                raise UsageError(f"{flag} goes with --batch FILE")
        return
    for flag, on in (("--json/--field", machine), ("-q/--quiet", quiet), ("--curl", curl)):
        if on:
            raise UsageError(f"{flag} cannot be used with --batch (it prints a JSON line per row)")
    if id_from_submitter is not None:
        raise UsageError(
            "--id-from-submitter cannot be used with --batch (every row would share it): "
            "give an id_from_submitter column, or let each row get one from its content"
        )
    from outkit_cli.terminal import current

    if current().stdin_tty and request.source == "-":
        raise UsageError("--batch -: standard input is a terminal; pipe the rows in")
