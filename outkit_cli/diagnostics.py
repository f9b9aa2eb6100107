"""Lines for stderr: warnings and --verbose detail. Plain click, no rich, so cheap to import.

Every line is passed through terminal.escape_controls: warnings and debug lines carry
text from outside (server answers, config values, file names)."""

from __future__ import annotations

import click

from outkit_cli.terminal import escape_controls

_state = {"verbose": False}
_warned: set[str] = set()  # the warnings given by this command


def set_verbose(on: bool) -> None:
    _state["verbose"] = on


def start_run() -> None:
    """A new command in this process (tests run several): quiet, no warning given yet."""
    _state["verbose"] = False
    _warned.clear()


def is_verbose() -> bool:
    return _state["verbose"]


def warn(message: str) -> None:
    """One ``warning:`` line on stderr, once per process: a config file read twice in one
    command warns about its mode once."""
    if message in _warned:
        return
    _warned.add(message)
    click.echo(f"warning: {escape_controls(message)}", err=True)


def debug(message: str) -> None:
    if _state["verbose"]:
        click.echo(f"debug: {escape_controls(message)}", err=True)
