"""Every shared option decorator, in one place: global options (accepted before and after
the command name), --json/--field, --timeout/--retries, --wait/--wait-timeout, and the
completion of profile names.

Imported by every command, `outkit sign` and `outkit --help` included: only click and
light project modules at module level.

Global options follow one precedence rule, like gh and kubectl: the value nearest the end
of the command line wins (`outkit -p a get -p b` uses `b`), and any flag wins over the
environment, which wins over the profile, which wins over the built-in default.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import click
from click.core import ParameterSource

from outkit_cli.errors import UsageError
from outkit_cli.output import OutputSpec

DEFAULT_WAIT_TIMEOUT = 60.0

__all__ = [
    "DEFAULT_WAIT_TIMEOUT",
    "GLOBAL_HELP_NOTE",
    "OutputSpec",
    "add_global_options",
    "complete_profile",
    "network_options",
    "output_options",
    "root_options",
    "wait_options",
]


def complete_profile(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """Shell completion of profile names, from the config file the command line names."""
    from click.shell_completion import CompletionItem

    from outkit_cli.config import config_path, load_config, profiles
    from outkit_cli.errors import OutkitError

    app = ctx.find_root().obj
    try:
        # no permission warning here: it would land in the middle of the user's prompt
        data = load_config(config_path(getattr(app, "config", None)), check_permissions=False)
    except (OutkitError, OSError):
        return []
    return [CompletionItem(n) for n in sorted(profiles(data)) if n.startswith(incomplete)]


def _remember(attr: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """A callback storing a given global option on the app context (``ctx.obj``).

    Callbacks run in command-line order, the root's before the subcommand's, so the value
    given last wins. Not given (None, or False for a flag) leaves the earlier value.
    """

    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        app = ctx.find_root().obj
        if value is None or value is False or app is None:
            return value
        setattr(app, attr, value)
        if attr == "profile":
            from_env = ctx.get_parameter_source(param.name or "") is ParameterSource.ENVIRONMENT
            app.profile_source = "OUTKIT_PROFILE" if from_env else None
        if attr == "verbose":
            from outkit_cli.diagnostics import set_verbose

            set_verbose(True)
        elif attr == "no_color":
            os.environ["NO_COLOR"] = "1"
        return value

    return callback


# (parameter declarations, attribute on the app context, click.Option settings, env var)
_GLOBALS: list[tuple[tuple[str, ...], str, dict[str, Any], str | None]] = [
    (
        ("-p", "--profile"),
        "profile",
        {"metavar": "NAME", "shell_complete": complete_profile,
         "help": "Profile from the config file to use."},
        "OUTKIT_PROFILE",
    ),
    (
        ("--config",),
        "config",
        {"type": click.Path(dir_okay=False), "metavar": "PATH",
         "help": "Config file (default: config.toml in the user config dir)."},
        "OUTKIT_CONFIG",
    ),
    (
        ("--api-url",),
        "api_url",
        {"metavar": "URL", "help": "API base URL (default: https://api.outkit.io/v1)."},
        "OUTKIT_API_URL",
    ),
    (
        ("--timeout",),
        "timeout",
        {"type": click.FloatRange(min=0, min_open=True), "metavar": "SECONDS",
         "help": "Seconds each request may take as a whole (connecting, sending, the "
                 "complete answer), for commands that talk to the API "
                 "[default: 30; env var: OUTKIT_TIMEOUT; profile: timeout]."},
        None,
    ),
    (
        ("--retries",),
        "retries",
        {"type": click.IntRange(min=0), "metavar": "N",
         "help": "Retries on 429/502/503/504 and failed connections "
                 "[default: 3; env var: OUTKIT_RETRIES; profile: retries]."},
        None,
    ),
    (
        ("-v", "--verbose"),
        "verbose",
        {"is_flag": True, "help": "Show request details and debug lines."},
        None,
    ),
    (
        ("--no-color",),
        "no_color",
        {"is_flag": True, "help": "Turn off colour (any non-empty NO_COLOR does too)."},
        None,
    ),
]  # fmt: skip

GLOBAL_HELP_NOTE = (
    "Global options (-p/--profile, --config, --api-url, --timeout, --retries, -v, "
    "--no-color) work here too; see `outkit --help`."
)


def root_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The global options on the root command, shown in `outkit --help` with their env vars."""
    for decls, attr, settings, envvar in reversed(_GLOBALS):
        extra = {"envvar": envvar, "show_envvar": True} if envvar else {}
        func = click.option(
            *decls, attr, expose_value=False, callback=_remember(attr), **settings, **extra
        )(func)
    return func


def add_global_options(command: click.Command) -> None:
    """Let ``command`` (and, for a group, its subcommands) take the global options too.

    Hidden from the command's help (the epilog points to `outkit --help`). An option the
    command already has keeps its own meaning: `keys add --api-url` is the profile's URL,
    and `send --timeout` is the same global option shown in `send --help`.
    """
    if getattr(command, "_outkit_globals", False):
        return
    taken = {opt for p in command.params for opt in getattr(p, "opts", ())}
    for decls, attr, settings, _ in _GLOBALS:
        if taken.intersection(decls):
            continue
        command.params.append(
            click.Option(
                list(decls),
                f"global_{attr}",
                expose_value=False,
                hidden=True,
                callback=_remember(attr),
                **settings,
            )
        )
    command._outkit_globals = True  # type: ignore[attr-defined]
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            add_global_options(sub)


def output_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Adds --json and --field NAME, passed to the command as ``output: OutputSpec``."""

    @click.option("--json", "as_json", is_flag=True, help="Print JSON to stdout, nothing else.")
    @click.option(
        "--field",
        "fields",
        multiple=True,
        metavar="NAME",
        help="Print only this field's raw value (repeatable; tab-separated, a line per object).",
    )
    @functools.wraps(func)
    def wrapper(*args: Any, as_json: bool, fields: tuple[str, ...], **kwargs: Any) -> Any:
        if as_json and fields:
            raise UsageError("--json and --field cannot be used together")
        return func(*args, output=OutputSpec(json=as_json, fields=fields), **kwargs)

    return wrapper


def network_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--timeout and --retries, shown in the help of every command that talks to the API and
    passed to it; given before the command name they reach it through the app context."""
    for decls, attr, settings, _ in reversed(_GLOBALS):
        if attr in ("timeout", "retries"):
            func = click.option(*decls, attr, **settings)(func)
    return func


def wait_options(wait_help: str, timeout_help: str) -> Callable[[Any], Any]:
    """--wait and --wait-timeout, with each command's own help text."""

    def decorate(func: Any) -> Any:
        func = click.option(
            "--wait-timeout",
            type=click.FloatRange(min=0, min_open=True),
            default=DEFAULT_WAIT_TIMEOUT,
            show_default=True,
            metavar="SECONDS",
            help=timeout_help,
        )(func)
        return click.option("--wait", is_flag=True, help=wait_help)(func)

    return decorate
