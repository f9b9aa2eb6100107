"""`outkit keys remove NAME`: drop a profile (asks on a terminal, --yes in scripts)."""

from __future__ import annotations

from typing import Any

import click

from outkit_cli.commands import command
from outkit_cli.commands.keys.profiles import remove_profile, stdin_is_tty
from outkit_cli.commands.options import complete_profile


@command(
    "remove",
    summary="Remove a profile.",
    exit_codes={0: "removed, or nothing removed when you said no",
                2: "unknown profile, no --yes without a terminal"},
    examples=["outkit keys remove staging", "outkit keys remove staging --yes   # in scripts"],
)  # fmt: skip
@click.argument("name", shell_complete=complete_profile)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def remove(app: Any, name: str, yes: bool) -> None:
    """Asks first on a terminal; in scripts pass --yes."""
    from outkit_cli.config import edit_config, load_config, profiles, unknown_profile
    from outkit_cli.errors import UsageError

    data = load_config(app.config_path)
    if name not in profiles(data):
        raise unknown_profile(name, data)
    if not yes:
        if not stdin_is_tty():
            raise UsageError(f"not removing profile {name!r} without confirmation: pass --yes")
        if not click.confirm(f"Remove profile {name!r} from {app.config_path}?"):
            click.echo("nothing removed", err=True)
            return
    with edit_config(app.config_path) as current:
        default = remove_profile(current, name)
    click.echo(f"removed profile {name!r}")
    if default is None and profiles(current):
        click.echo(
            "there is no default profile now: choose one with `outkit keys default NAME`",
            err=True,
        )
