"""Lines for stderr: warnings and --verbose detail. Plain click, no rich, so cheap to import."""

from __future__ import annotations

import click

_state = {"verbose": False}


def set_verbose(on: bool) -> None:
    _state["verbose"] = on


def is_verbose() -> bool:
    return _state["verbose"]


def warn(message: str) -> None:
    click.echo(f"warning: {message}", err=True)


def debug(message: str) -> None:
    if _state["verbose"]:
        click.echo(f"debug: {message}", err=True)
