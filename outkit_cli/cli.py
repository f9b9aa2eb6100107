"""The root `outkit` command: global options, lazy subcommands, and the one place that
turns failures into a line on stderr and an exit code.

Subcommand modules are imported only when that subcommand runs, so `outkit --help`,
`outkit --version` and `outkit sign` never pay for `requests` or `rich`.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING, Any

import click

from outkit_cli import __version__
from outkit_cli.commands import COMMANDS, SuggestingGroup
from outkit_cli.commands.options import add_global_options, root_options
from outkit_cli.errors import ExitCode, OutkitError, exit_code_table
from outkit_cli.terminal import Terminal, escape_controls, one_line
from outkit_cli.terminal import current as current_terminal

if TYPE_CHECKING:  # pathlib and dataclasses cost `outkit --help` a few milliseconds
    from pathlib import Path


class LazyGroup(SuggestingGroup):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        entry = COMMANDS.get(name)
        if entry is None:
            return None
        module, attr, _ = entry
        command: click.Command = getattr(importlib.import_module(module), attr)
        add_global_options(command)
        return command

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        # the app context exists before any option is parsed: global options' callbacks,
        # at the root and after the command name, write into it in command-line order
        if parent is None:
            from outkit_cli.diagnostics import start_run

            start_run()  # a second run in one process (tests) starts afresh
            # the width click's help formatter would get from shutil, whose import (zlib,
            # bz2, lzma) costs `outkit --help` milliseconds; inherited by every subcommand
            width = extra.get("max_content_width") or self.context_settings.get(
                "max_content_width", 80
            )
            extra.setdefault("terminal_width", max(min(current_terminal().width, width) - 2, 50))
        extra.setdefault("obj", AppContext())
        return super().make_context(info_name, args, parent, **extra)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_) for name, (_, _, help_) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


class AppContext:
    """Global options, handed to every subcommand as ``ctx.obj``."""

    def __init__(self) -> None:
        self.profile: str | None = None
        self.profile_source: str | None = None  # "OUTKIT_PROFILE" when that chose it
        self.config: str | None = None  # --config PATH as given
        self.api_url: str | None = None
        self.timeout: float | None = None
        self.retries: int | None = None
        self.verbose = False
        self.no_color = False
        self.terminal: Terminal = current_terminal()
        # `keys test NAME`: that profile's own credentials, never OUTKIT_ACCESS_*'s
        self.profile_credentials_only = False

    def with_profile(self, name: str) -> AppContext:
        """A copy of these options that selects profile ``name`` and its own credentials
        only (`keys test NAME`): credentials from OUTKIT_ACCESS_* are ignored, else
        production credentials in the environment went to profile NAME's API URL."""
        other = AppContext.__new__(AppContext)
        other.__dict__.update(
            self.__dict__, profile=name, profile_source=None, profile_credentials_only=True
        )
        return other

    @property
    def config_path(self) -> Path:
        from pathlib import Path

        from outkit_cli.config import config_path

        return config_path(None if self.config is None else Path(self.config))

    def settings(self, **overrides: Any) -> Any:
        """Resolved settings: flag > environment > profile > default."""
        from outkit_cli.config import config_location, resolve_settings

        flags = {k: v for k, v in overrides.items() if v is not None}
        for name in ("api_url", "timeout", "retries"):
            if getattr(self, name) is not None:
                flags.setdefault(name, getattr(self, name))
        # the location as a string: `outkit sign` gets here without importing pathlib
        location = config_location(self.config)
        env = None
        if self.profile_credentials_only:
            import os

            from outkit_cli.config import ENV_PREFIX

            env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
        return resolve_settings(
            location,
            profile=self.profile,
            overrides=flags,
            profile_source=self.profile_source,
            env=env,
        )


EPILOG = "\b\nExit codes:\n" + exit_code_table()


@click.group(
    cls=LazyGroup,
    epilog=EPILOG,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@root_options
@click.version_option(__version__, "--version", prog_name="outkit", message="%(prog)s %(version)s")
def cli() -> None:
    """outkit: send and inspect messages through the Outkit API.

    Credentials come from a profile (`outkit keys add`), or from OUTKIT_ACCESS_KEY,
    OUTKIT_ACCESS_PASSPHRASE and OUTKIT_ACCESS_SECRET. Try it locally with `outkit serve`.

    Global options may come before or after the command name (`outkit get -p prod ID`);
    the one given last wins, then the environment, the profile, the built-in default.
    """


def _fail(message: str, code: int) -> None:
    click.echo(f"error: {escape_controls(message)}", err=True)
    sys.exit(code)


def _drop_relative_xdg_dirs() -> None:
    """The XDG Base Directory spec: a relative path in $XDG_CONFIG_HOME (or DATA, CACHE,
    STATE) "is invalid and should be ignored"; platformdirs would take it relative to the
    working directory, so config, sandbox data and journals would move with `cd`."""
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
        value = os.environ.get(var)
        if value and not os.path.isabs(value):
            del os.environ[var]


def _reader_gone() -> None:
    """The reader of stdout went away (`outkit get --field id | head -1`): it has what it
    wanted, so exit 0 with nothing on stderr; what is still buffered goes to /dev/null so
    that the interpreter's last flush does not fail (Python docs, "Note on SIGPIPE")."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real stdout (tests): nothing buffered to drop
        pass
    sys.exit(0)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI on ``argv`` (default: the command line) and exit with its status.

    The console script enters through ``outkit_cli.__main__.main``, which imports this."""
    _drop_relative_xdg_dirs()
    try:
        rv = cli.main(args=argv, prog_name="outkit", standalone_mode=False)
    except OutkitError as exc:
        from outkit_cli.diagnostics import is_verbose

        if exc.detail and is_verbose():
            click.echo(escape_controls(exc.detail, multiline=True), err=True)
        _fail(exc.message, int(exc.exit_code))
    except click.exceptions.NoArgsIsHelpError as exc:
        # a bare `outkit` or `outkit keys`: the help itself, not a one-line squashed copy
        click.echo(exc.ctx.get_help(), err=True)
        sys.exit(int(ExitCode.USAGE))
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx else "outkit"
        _fail(f"{one_line(exc.format_message())} (see '{where} --help')", int(ExitCode.USAGE))
    except click.ClickException as exc:
        # click raises these for bad input (e.g. an unreadable file): a usage error, not a bug
        code = int(ExitCode.USAGE) if exc.exit_code == 1 else exc.exit_code
        _fail(one_line(exc.format_message()), code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except BrokenPipeError:
        _reader_gone()
    except SystemExit as exc:
        # click turns EPIPE into exit 1, after wrapping the streams in PacifyFlushWrapper
        # (click.core.BaseCommand.main): that wrapper is the sign the reader went away
        # (newer click names it _PacifyFlushWrapper and the old name warns: match either)
        wrapped = type(sys.stdout).__name__.lstrip("_") == "PacifyFlushWrapper"
        if exc.code == 1 and wrapped:
            _reader_gone()
        raise
    except Exception as exc:  # a bug: one line, the traceback only with --verbose
        from outkit_cli.diagnostics import is_verbose

        if is_verbose():
            import traceback

            traceback.print_exc()
        _fail(
            f"unexpected {type(exc).__name__}: {exc} (a bug: please report it; "
            "--verbose shows the traceback)",
            int(ExitCode.UNEXPECTED),
        )
    sys.exit(rv if isinstance(rv, int) else 0)
