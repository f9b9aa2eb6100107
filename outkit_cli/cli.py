"""The root `outkit` command: global options, lazy subcommands, and the one place that
turns failures into a line on stderr and an exit code.

Subcommand modules are imported only when that subcommand runs, so `outkit --help`,
`outkit --version` and `outkit sign` never pay for `requests` or `rich`.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from outkit_cli import __version__
from outkit_cli.errors import ExitCode, OutkitError, exit_code_table
from outkit_cli.terminal import escape_controls

# name -> (module, attribute, one-line help shown by `outkit --help` without importing it)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "send": ("outkit_cli.commands.send", "send", "Create a message (render and deliver it)."),
    "get": ("outkit_cli.commands.get", "get", "Show messages by id, or list recent ones."),
    "keys": ("outkit_cli.commands.keys", "keys", "Manage API key profiles."),
    "sign": ("outkit_cli.commands.sign", "sign", "Show exactly how a request is signed."),
    "serve": ("outkit_cli.commands.serve", "serve", "Run the local Outkit-compatible sandbox."),
    "completion": (
        "outkit_cli.commands.completion",
        "completion",
        "Print the shell completion script for bash, zsh or fish.",
    ),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        entry = COMMANDS.get(name)
        if entry is None:
            return None
        module, attr, _ = entry
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_) for name, (_, _, help_) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@dataclass
class AppContext:
    """Global options, handed to every subcommand as ``ctx.obj``."""

    profile: str | None = None
    config: Path | None = None
    api_url: str | None = None
    verbose: bool = False

    @property
    def config_path(self) -> Path:
        from outkit_cli.config import config_path

        return config_path(self.config)

    def settings(self, **overrides: Any) -> Any:
        """Resolved settings: flag > environment > profile > default."""
        from outkit_cli.config import resolve_settings

        flags = {k: v for k, v in overrides.items() if v is not None}
        if self.api_url:
            flags.setdefault("api_url", self.api_url)
        return resolve_settings(self.config_path, profile=self.profile, overrides=flags)


def complete_profile(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    from click.shell_completion import CompletionItem

    from outkit_cli.config import config_path, load_config, profiles

    try:
        root = ctx.find_root()
        # no permission warning here: it would land in the middle of the user's prompt
        data = load_config(config_path(root.params.get("config")), check_permissions=False)
    except (OutkitError, OSError):
        return []
    return [CompletionItem(n) for n in sorted(profiles(data)) if n.startswith(incomplete)]


EPILOG = "\b\nExit codes:\n" + exit_code_table()


@click.group(
    cls=LazyGroup,
    epilog=EPILOG,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "-p",
    "--profile",
    envvar="OUTKIT_PROFILE",
    show_envvar=True,
    shell_complete=complete_profile,
    metavar="NAME",
    help="Profile from the config file to use.",
)
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="OUTKIT_CONFIG",
    show_envvar=True,
    help="Config file (default: config.toml in the user config dir).",
)
@click.option(
    "--api-url",
    envvar="OUTKIT_API_URL",
    show_envvar=True,
    metavar="URL",
    help="API base URL (default: https://api.outkit.io/v1).",
)
@click.option("-v", "--verbose", is_flag=True, help="Show request details and debug lines.")
@click.option("--no-color", is_flag=True, help="Turn off colour (any non-empty NO_COLOR does too).")
@click.version_option(__version__, "--version", prog_name="outkit", message="%(prog)s %(version)s")
@click.pass_context
def cli(
    ctx: click.Context,
    profile: str | None,
    config: Path | None,
    api_url: str | None,
    verbose: bool,
    no_color: bool,
) -> None:
    """outkit: send and inspect messages through the Outkit API.

    Credentials come from a profile (`outkit keys add`), or from OUTKIT_ACCESS_KEY,
    OUTKIT_ACCESS_PASSPHRASE and OUTKIT_ACCESS_SECRET. Try it locally with `outkit serve`.
    """
    from outkit_cli.diagnostics import set_verbose

    if no_color:
        os.environ["NO_COLOR"] = "1"
    set_verbose(verbose)
    ctx.obj = AppContext(profile=profile, config=config, api_url=api_url, verbose=verbose)


def _one_line(message: str) -> str:
    return " ".join(message.split())


def _fail(message: str, code: int) -> None:
    click.echo(f"error: {escape_controls(message)}", err=True)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    try:
        rv = cli.main(args=argv, prog_name="outkit", standalone_mode=False)
    except OutkitError as exc:
        from outkit_cli.diagnostics import is_verbose

        if exc.detail and is_verbose():
            click.echo(exc.detail, err=True)
        _fail(exc.message, int(exc.exit_code))
    except click.exceptions.NoArgsIsHelpError as exc:
        # a bare `outkit` or `outkit keys`: the help itself, not a one-line squashed copy
        click.echo(exc.ctx.get_help(), err=True)
        sys.exit(int(ExitCode.USAGE))
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx else "outkit"
        _fail(f"{_one_line(exc.format_message())} (see '{where} --help')", int(ExitCode.USAGE))
    except click.ClickException as exc:
        # click raises these for bad input (e.g. an unreadable file): a usage error, not a bug
        code = int(ExitCode.USAGE) if exc.exit_code == 1 else exc.exit_code
        _fail(_one_line(exc.format_message()), code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except BrokenPipeError:
        # the reader went away (`outkit get | head`): nothing left to say
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(0)
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
