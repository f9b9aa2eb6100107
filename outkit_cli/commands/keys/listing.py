"""`outkit keys list`: every profile, never a secret."""

from __future__ import annotations

from typing import Any

import click

from outkit_cli.commands import command
from outkit_cli.commands.keys.profiles import (
    LIST_COLUMNS,
    default_marker,
    list_records,
    stdout_is_tty,
)
from outkit_cli.commands.options import OutputSpec, output_options
from outkit_cli.output import plain_rows


@command(
    "list",
    summary="List profiles: name, key, API URL, signed, default.",
    exit_codes={0: None, 2: "a config file that does not parse"},
    examples=["outkit keys list", "outkit keys list --json", "outkit keys list --field name"],
)
@output_options
@click.pass_obj
def list_(app: Any, output: OutputSpec) -> None:
    """The secret and passphrase are never shown."""
    from outkit_cli.config import load_config
    from outkit_cli.output import emit, field_value

    records = list_records(load_config(app.config_path))

    def human() -> None:
        if not records:
            click.echo("no profiles yet: add one with `outkit keys add NAME`", err=True)
            return
        if stdout_is_tty():
            from outkit_cli.output import KEEP, OPTIONAL, print_table

            print_table(
                records,
                LIST_COLUMNS,
                # names, keys and URLs are copied from here: never cut; the yes/no
                # columns give way on a narrow terminal, with a note
                rules={"name": KEEP, "key": KEEP, "api_url": KEEP,
                       "signed": OPTIONAL, "default": OPTIONAL},
                formatters={"default": default_marker},
            )  # fmt: skip
            return
        # not a terminal: plain text, and rich is never imported
        rows = [[heading for _, heading in LIST_COLUMNS]]
        for rec in records:
            rows.append(
                [default_marker(rec[f]) if f == "default" else field_value(rec[f])
                 for f, _ in LIST_COLUMNS]
            )  # fmt: skip
        click.echo(plain_rows(rows))

    emit(output, records, single=False, human=human)
