"""One module per command or group; each parses options and calls the core modules.

The one place for each command's help: its summary line lives in ``COMMANDS`` (read by
`outkit --help` without importing the command), the rest in the command's docstring, and
``command()`` puts them together with the exit codes and the examples that end every
`--help` (as gh's do).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import click

# name -> (module, attribute, the one-line summary shown by `outkit --help` and `NAME --help`)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "send": (
        "outkit_cli.commands.send",
        "send",
        "Create a message: render a template (or take ready bodies) and deliver it.",
    ),
    "get": ("outkit_cli.commands.get", "get", "Show messages by id, or list recent ones."),
    "keys": ("outkit_cli.commands.keys", "keys", "Manage API key profiles in the config file."),
    "sign": ("outkit_cli.commands.sign", "sign", "Show exactly how a request is signed."),
    "serve": ("outkit_cli.commands.serve", "serve", "Run the local Outkit-compatible sandbox."),
    "completion": (
        "outkit_cli.commands.completion",
        "completion",
        "Print the shell completion script for bash, zsh or fish.",
    ),
}


# every line of `--help` fits this many columns (the usual terminal); the epilog's lines are
# kept as written (click's \b), and click indents them by 2
HELP_WIDTH = 80
_EPILOG_WIDTH = HELP_WIDTH - 2


def exit_codes_text(codes: Mapping[int, str | None]) -> str:
    """`Exit codes:` lines; a code given without its own text gets the table's meaning.
    A meaning too long for one line goes on under itself (a hanging indent)."""
    from outkit_cli.errors import EXIT_CODE_HELP, ExitCode

    lines = []
    for code, text in codes.items():
        line = f"  {code:>3}  {text or EXIT_CODE_HELP[ExitCode(code)]}"
        if len(line) > _EPILOG_WIDTH:
            import textwrap  # only for a long line: `outkit sign`'s help fits (start-up)

            line = "\n".join(textwrap.wrap(line, _EPILOG_WIDTH, subsequent_indent=" " * 7))
        lines.append(line)
    return "\b\nExit codes:\n" + "\n".join(lines)


def help_epilog(examples: Sequence[str], exit_codes: Mapping[int, str | None]) -> str:
    """What ends a command's help: its exit codes, a pointer to the global options, and
    the examples last."""
    from outkit_cli.commands.options import GLOBAL_HELP_NOTE

    shown = "\n".join(f"  {line}" for line in examples)
    return f"{exit_codes_text(exit_codes)}\n\n{GLOBAL_HELP_NOTE}\n\n\b\nExamples:\n{shown}"


class SuggestingGroup(click.Group):
    """A group that answers a mistyped command name with the nearest one, as gh does:
    `outkit sned` -> "No such command 'sned'. Did you mean 'send'?" (exit 2, one line)."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        typo = name and not name.startswith("-") and not ctx.resilient_parsing
        if typo and self.get_command(ctx, name) is None:
            import difflib  # the error path only

            close = difflib.get_close_matches(name, self.list_commands(ctx), n=1)
            if close:
                ctx.fail(f"No such command {name!r}. Did you mean {close[0]!r}?")
        return super().resolve_command(ctx, args)


def command(
    name: str,
    *,
    examples: Sequence[str],
    exit_codes: Mapping[int, str | None],
    summary: str | None = None,
    group: bool = False,
    **settings: Any,
) -> Callable[[Callable[..., Any]], Any]:
    """click.command (or click.group) with the help assembled in one way.

    ``summary`` defaults to the command's entry in ``COMMANDS``; subcommands (of `keys`)
    give their own. The function's docstring holds the details that follow the summary.
    """

    def decorate(func: Callable[..., Any]) -> Any:
        line = summary if summary is not None else COMMANDS[name][2]
        details = inspect.cleandoc(func.__doc__ or "")
        help_text = f"{line}\n\n{details}" if details else line
        if group:
            settings.setdefault("cls", SuggestingGroup)
        make = click.group if group else click.command
        return make(
            name,
            help=help_text,
            short_help=line,
            epilog=help_epilog(examples, exit_codes),
            **settings,
        )(func)

    return decorate
