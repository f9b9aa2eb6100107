"""`outkit keys default [NAME]`: set or print the default profile."""

from __future__ import annotations

from typing import Any

import click

from outkit_cli.commands import command
from outkit_cli.commands.options import complete_profile


@command(
    "default",
    summary="Set (or print) the default profile.",
    exit_codes={0: None, 2: "unknown profile, or no default profile to print"},
    examples=["outkit keys default production", "outkit keys default   # prints its name"],
)
@click.argument("name", required=False, shell_complete=complete_profile)
@click.pass_obj
def default(app: Any, name: str | None) -> None:
    """Without NAME, prints the default profile's name."""
    from outkit_cli.config import default_profile_name, edit_config, load_config, unknown_profile
    from outkit_cli.errors import UsageError

    if name is None:
        current = default_profile_name(load_config(app.config_path))
        if current is None:
            raise UsageError("no default profile: set one with `outkit keys default NAME`")
        click.echo(current)
        return
    with edit_config(app.config_path) as data:
        if name not in data.get("profiles", {}):
            raise unknown_profile(name, data)
        data["default_profile"] = name
    click.echo(f"default profile is now {name!r}")
