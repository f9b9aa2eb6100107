"""`outkit keys show [NAME]`: one profile, its secrets masked."""

from __future__ import annotations

from typing import Any

import click

from outkit_cli.commands import command
from outkit_cli.commands.keys.profiles import SHOW_FIELDS, profile_record, stdout_is_tty
from outkit_cli.commands.options import OutputSpec, complete_profile, output_options
from outkit_cli.output import plain_rows


@command(
    "show",
    summary="Show a profile, passphrase and secret masked.",
    exit_codes={0: None, 2: "unknown profile, no default, or a config file that does not parse"},
    examples=[
        "outkit keys show production",
        "outkit keys show production --reveal --field secret",
    ],
)
@click.argument("name", required=False, shell_complete=complete_profile)
@click.option("--reveal", is_flag=True, help="Show the secret and passphrase unmasked.")
@output_options
@click.pass_obj
def show(app: Any, name: str | None, reveal: bool, output: OutputSpec) -> None:
    """Without NAME, the selected profile (-p) or the default one. --reveal shows the
    secret and passphrase."""
    from outkit_cli.config import default_profile_name, load_config, profiles, unknown_profile
    from outkit_cli.errors import UsageError
    from outkit_cli.output import emit, field_value, mask

    data = load_config(app.config_path)
    default = default_profile_name(data)
    name = name or app.profile or default
    if name is None:
        if not profiles(data):
            raise UsageError("no profiles yet: add one with `outkit keys add NAME`")
        raise UsageError("no default profile: name one, or set it with `outkit keys default`")
    prof = profiles(data).get(name)
    if prof is None:
        raise unknown_profile(name, data)
    record = profile_record(name, prof, default)
    if not reveal:
        for f in ("secret", "passphrase"):
            record[f] = mask(record[f]) or None
    # people see the fields that are set; --json keeps every key for scripts
    shown = [f for f in SHOW_FIELDS if record[f] is not None]

    def human() -> None:
        if stdout_is_tty():
            from outkit_cli.output import print_record

            print_record(record, shown)
        else:
            click.echo(plain_rows([[f, field_value(record[f])] for f in shown]))

    emit(output, [record], single=True, human=human)
