"""`outkit completion SHELL`: the same script `make completions` checks in."""

from __future__ import annotations

import click

from outkit_cli.commands import command

SHELLS = ("bash", "zsh", "fish")


def completion_script(shell: str) -> str:
    from click.shell_completion import get_completion_class

    cls = get_completion_class(shell)
    if cls is None:  # pragma: no cover - SHELLS only lists supported shells
        raise click.BadParameter(shell)
    # The script only names the program and its environment variable; it calls `outkit`
    # back to complete, so the command tree is not needed here (nor the root imported).
    return cls(click.Group("outkit"), {}, "outkit", "_OUTKIT_COMPLETE").source()


@command(
    "completion",
    exit_codes={0: None, 2: "unknown shell"},
    examples=[
        "mkdir -p ~/.local/share/bash-completion/completions",
        "outkit completion bash > ~/.local/share/bash-completion/completions/outkit",
        "mkdir -p ~/.zfunc  # fpath=(~/.zfunc $fpath) in ~/.zshrc, before compinit",
        "outkit completion zsh > ~/.zfunc/_outkit",
        "mkdir -p ~/.config/fish/completions",
        "outkit completion fish > ~/.config/fish/completions/outkit.fish",
    ],
)
@click.argument("shell", type=click.Choice(SHELLS), metavar="SHELL")
def completion(shell: str) -> None:
    """SHELL is bash, zsh or fish."""
    click.echo(completion_script(shell), nl=False)
