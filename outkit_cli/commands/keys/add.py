"""`outkit keys add NAME`: add or replace a profile, prompting on a terminal."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from outkit_cli.commands import command
from outkit_cli.commands.keys.profiles import check_name, stdin_is_tty
from outkit_cli.signing import is_utf8_text
from outkit_cli.terminal import escape_controls


@command(
    "add",
    summary="Add a profile, or replace one with --force.",
    exit_codes={0: "added or replaced", 2: "bad or missing value, the profile exists "
                "(without --force), or a config file that does not parse"},
    examples=[
        "outkit keys add production --key AKIA123   # asks for the rest on a terminal",
        "# the passphrase from OUTKIT_ACCESS_PASSPHRASE, the secret from a file:",
        'outkit keys add ci --key "$KEY" --secret-stdin < secret.txt',
        "# both from one file, a line each:",
        'outkit keys add ci --key "$KEY" --passphrase-stdin --secret-stdin < two.txt',
        "outkit keys add local --key k --passphrase p --secret s --force \\",
        "    --api-url http://127.0.0.1:8025/v1",
    ],
)  # fmt: skip
@click.argument("name")
@click.option("--key", metavar="KEY", help="Access key (Outkit-Access-Key).")
@click.option(
    "--passphrase",
    metavar="PASSPHRASE",
    help="Passphrase (prompted, hidden, on a TTY; else OUTKIT_ACCESS_PASSPHRASE or "
    "--passphrase-stdin keep it off the command line).",
)
@click.option(
    "--passphrase-stdin",
    is_flag=True,
    help="Read the passphrase from stdin (with --secret-stdin: the first line).",
)
@click.option("--secret", metavar="SECRET", help="Secret (prompted, hidden, on a TTY).")
@click.option(
    "--secret-stdin",
    is_flag=True,
    help="Read the secret from stdin, keeping it off the command line.",
)
@click.option("--api-url", metavar="URL", help="API base URL (default: https://api.outkit.io/v1).")
@click.option(
    "--unsigned/--signed",
    default=None,
    help="The key opted out of signing: send Outkit-Access-Secret instead of a signature "
    "(--signed: sign, the default for a new profile).",
)
@click.option("--project", metavar="ID", help="Default project for `outkit send`.")
@click.option("--from", "from_", metavar="SENDER", help="Default sender for `outkit send`.")
@click.option("--backend", metavar="ID", help="Default backend for `outkit send`.")
@click.option("--default", "make_default", is_flag=True, help="Make this the default profile.")
@click.option(
    "-f", "--force", is_flag=True, help="Replace an existing profile NAME without asking."
)
@click.pass_obj
def add(
    app: Any,
    name: str,
    key: str | None,
    passphrase: str | None,
    secret: str | None,
    secret_stdin: bool,
    passphrase_stdin: bool,
    api_url: str | None,
    unsigned: bool | None,
    project: str | None,
    from_: str | None,
    backend: str | None,
    make_default: bool,
    force: bool,
) -> None:
    """Values not given are prompted for on a terminal (secrets hidden); without one they
    are required. The first profile added becomes the default. Replacing an existing
    profile asks first on a terminal; in scripts pass --force. A replaced profile keeps
    its settings (API URL, signing, project, sender, backend, anything added by hand)
    unless an option gives a new value; its key, passphrase and secret are replaced.
    """
    from outkit_cli.config import header_problem, load_config, profiles, save_profile
    from outkit_cli.errors import UsageError

    check_name(name)
    given = {"key": key, "passphrase": passphrase, "secret": secret, "api-url": api_url,
             "project": project, "from": from_, "backend": backend}  # fmt: skip
    for option, value in given.items():
        if value is not None and not is_utf8_text(value):
            # argv bytes that were not UTF-8 cannot be stored in a TOML file
            raise UsageError(f"--{option} must be UTF-8 text")
    if api_url is not None:
        from outkit_cli.client import check_api_url

        # the rule every later command applies: refused now, not on every use
        api_url = check_api_url(api_url)
    if passphrase_stdin:
        if passphrase is not None:
            raise UsageError(
                "give the passphrase with --passphrase or --passphrase-stdin, not both"
            )
        passphrase = _stdin_line("--passphrase-stdin", "passphrase")
    elif passphrase is None and os.environ.get("OUTKIT_ACCESS_PASSPHRASE"):
        passphrase = os.environ["OUTKIT_ACCESS_PASSPHRASE"]  # kept out of ps and history
    if secret_stdin:
        if secret is not None:
            raise UsageError("give the secret with --secret or --secret-stdin, not both")
        secret = _stdin_line("--secret-stdin", "secret")
    from_stdin = secret_stdin or passphrase_stdin
    values: dict[str, Any] = {"key": key, "passphrase": passphrase, "secret": secret}
    empty = [f"--{f}" for f, v in values.items() if v == ""]
    if empty:
        raise UsageError(f"{', '.join(empty)} {'is' if len(empty) == 1 else 'are'} empty")
    # refuse a broken file, or a profile that would be replaced, before prompting
    old = profiles(load_config(app.config_path)).get(name)
    existed = old is not None
    if existed and not force:
        if not stdin_is_tty() or from_stdin:
            raise UsageError(f"profile {name!r} exists: pass --force to replace it")
        if not click.confirm(
            f"Replace the credentials of profile {name!r} in {app.config_path} (its other "
            "settings are kept unless given)?"
        ):
            click.echo("nothing changed", err=True)
            return
    missing = [f for f, v in values.items() if not v]
    if missing and (from_stdin or not stdin_is_tty()):
        options = ", ".join(f"--{f}" for f in missing)
        hint = " (or --secret-stdin)" if "secret" in missing else ""
        if "passphrase" in missing:
            hint += " (or --passphrase-stdin, or OUTKIT_ACCESS_PASSPHRASE)"
        raise UsageError(f"missing {options}{hint}: there is no terminal to prompt on")
    for f in missing:
        # click.prompt asks again on empty input, so every value ends up non-empty
        values[f] = click.prompt(f.capitalize(), hide_input=f != "key")
    kept = {k: v for k, v in (old or {}).items() if k not in values}
    if unsigned is None:
        unsigned = kept.get("signed") is False
    for f in ("key", "passphrase") if not unsigned else ("key", "passphrase", "secret"):
        problem = header_problem(values[f])
        if problem:  # caught now, not on every later request; the value is not shown
            raise UsageError(f"the {f} cannot be sent in an HTTP header: {problem}")
    given_settings = {"api_url": api_url, "signed": not unsigned, "project": project,
                      "backend": backend, "from": from_}  # fmt: skip
    values = {**kept, **values, **{k: v for k, v in given_settings.items() if v is not None}}
    became_default = save_profile(app.config_path, name, values, make_default=make_default)
    verb = "replaced" if existed else "added"
    note = " (the default profile)" if became_default else ""
    click.echo(f"{verb} profile {name!r} in {escape_controls(str(app.config_path))}{note}")


def _stdin_line(option: str, what: str) -> str:
    """One line of stdin (without its line end): a secret kept out of argv and history."""
    from outkit_cli.errors import UsageError

    try:
        value = sys.stdin.buffer.readline().decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise UsageError(f"{option}: the {what} must be UTF-8 text") from None
    if not value:
        raise UsageError(f"{option}: stdin held no {what}")
    return value
