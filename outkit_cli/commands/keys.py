"""`outkit keys`: API key profiles in the config file (add, list, show, remove, default).

The click layer only parses options and prompts; reading and writing the file is
`outkit_cli.config`'s job (locked, atomic, never overwriting a file that does not parse).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from typing import Any

import click

from outkit_cli.cli import complete_profile
from outkit_cli.output import OutputSpec, output_options

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
# what `keys list` and `keys show` print, in order; never the secret or passphrase in `list`
LIST_FIELDS = ("name", "key", "api_url", "signed", "default")
SHOW_FIELDS = (
    "name",
    "default",
    "key",
    "passphrase",
    "secret",
    "api_url",
    "signed",
    "project",
    "from",
    "backend",
    "timeout",
    "retries",
    "ca_bundle",
)


def _stdin_is_tty() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):  # closed or replaced stdin
        return False


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_name(name: str) -> None:
    from outkit_cli.errors import UsageError

    if not _NAME.fullmatch(name):
        raise UsageError(
            f"profile name {name!r} must start with a letter or digit and hold only letters, "
            "digits, '.', '_' and '-'"
        )


def check_api_url(url: str) -> str:
    from urllib.parse import urlsplit

    from outkit_cli.errors import UsageError

    try:
        parts = urlsplit(url)
        valid = parts.scheme in ("http", "https") and bool(parts.netloc)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number 0-65535
    except ValueError:  # also 'http://[x': an unbalanced IPv6 bracket
        valid = False
    if not valid:
        raise UsageError(
            f"--api-url must be an http(s) URL such as https://api.outkit.io/v1, not {url!r}"
        )
    return url.rstrip("/")


def profile_record(name: str, prof: Mapping[str, Any], default: str | None) -> dict[str, Any]:
    """A profile as shown: every known field, the built-in API URL when none is set."""
    from outkit_cli.config import DEFAULT_API_URL

    record: dict[str, Any] = {f: prof.get(f) for f in SHOW_FIELDS}
    record["name"] = name
    record["default"] = name == default
    record["api_url"] = prof.get("api_url") or DEFAULT_API_URL
    record["signed"] = prof.get("signed", True)
    return record


def list_records(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    from outkit_cli.config import default_profile_name, profiles

    default = default_profile_name(data)
    return [
        {f: rec[f] for f in LIST_FIELDS}
        for rec in (profile_record(n, p, default) for n, p in sorted(profiles(data).items()))
    ]


def remove_profile(data: dict[str, Any], name: str) -> str | None:
    """Drop a profile from parsed config data; returns the default profile afterwards."""
    from outkit_cli.config import profiles, unknown_profile

    if name not in profiles(data):
        raise unknown_profile(name, data)
    del data["profiles"][name]
    remaining = sorted(data["profiles"])
    if data.get("default_profile") == name or data.get("default_profile") not in remaining:
        data.pop("default_profile", None)
        if len(remaining) == 1:
            data["default_profile"] = remaining[0]
    return data.get("default_profile")


def _default_marker(value: Any) -> str:
    return "*" if value else ""


LIST_COLUMNS = [
    ("name", "name"),
    ("key", "key"),
    ("api_url", "API URL"),
    ("signed", "signed"),
    ("default", "default"),
]


def plain_rows(rows: list[list[str]]) -> str:
    """Columns aligned with two spaces, no box drawing: for pipes, grep and awk."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _stdout_is_tty() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


@click.group()
def keys() -> None:
    """Manage API key profiles in the config file.

    \b
    outkit keys add production --key KEY --passphrase PASS --secret-stdin < secret.txt
    outkit keys list
    outkit keys default production
    """


@keys.command("add")
@click.argument("name")
@click.option("--key", metavar="KEY", help="Access key (Outkit-Access-Key).")
@click.option("--passphrase", metavar="TEXT", help="Passphrase (prompted, hidden, on a TTY).")
@click.option("--secret", metavar="TEXT", help="Secret (prompted, hidden, on a TTY).")
@click.option(
    "--secret-stdin",
    is_flag=True,
    help="Read the secret from stdin, keeping it off the command line.",
)
@click.option("--api-url", metavar="URL", help="API base URL (default: https://api.outkit.io/v1).")
@click.option(
    "--unsigned",
    is_flag=True,
    help="The key opted out of signing: send Outkit-Access-Secret instead of a signature.",
)
@click.option("--project", metavar="ID", help="Default project for `outkit send`.")
@click.option("--from", "from_", metavar="SENDER", help="Default sender for `outkit send`.")
@click.option("--backend", metavar="ID", help="Default backend for `outkit send`.")
@click.option("--default", "make_default", is_flag=True, help="Make this the default profile.")
@click.pass_obj
def add(
    app: Any,
    name: str,
    key: str | None,
    passphrase: str | None,
    secret: str | None,
    secret_stdin: bool,
    api_url: str | None,
    unsigned: bool,
    project: str | None,
    from_: str | None,
    backend: str | None,
    make_default: bool,
) -> None:
    """Add or replace the profile NAME.

    Values not given are prompted for on a terminal (secrets hidden); without one they
    are required. The first profile added becomes the default.
    """
    from outkit_cli.config import header_problem, load_config, profiles, save_profile
    from outkit_cli.errors import UsageError

    check_name(name)
    given = {"key": key, "passphrase": passphrase, "secret": secret, "api-url": api_url,
             "project": project, "from": from_, "backend": backend}  # fmt: skip
    for option, value in given.items():
        if value is not None and not _is_utf8(value):
            # argv bytes that were not UTF-8 cannot be stored in a TOML file
            raise UsageError(f"--{option} must be UTF-8 text")
    if api_url is not None:
        api_url = check_api_url(api_url)
    if secret_stdin:
        if secret is not None:
            raise UsageError("give the secret with --secret or --secret-stdin, not both")
        try:
            secret = sys.stdin.buffer.readline().decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            raise UsageError("--secret-stdin: the secret must be UTF-8 text") from None
        if not secret:
            raise UsageError("--secret-stdin: stdin held no secret")
    # refuse a broken file before prompting for anything
    existed = name in profiles(load_config(app.config_path))
    values = {"key": key, "passphrase": passphrase, "secret": secret}
    missing = [f for f, v in values.items() if not v]
    if missing and (secret_stdin or not _stdin_is_tty()):
        options = ", ".join(f"--{f}" for f in missing)
        hint = " (or --secret-stdin)" if "secret" in missing else ""
        raise UsageError(f"missing {options}{hint}: there is no terminal to prompt on")
    for f in missing:
        # click.prompt asks again on empty input, so every value ends up non-empty
        values[f] = click.prompt(f.capitalize(), hide_input=f != "key")
    for f in ("key", "passphrase") if not unsigned else ("key", "passphrase", "secret"):
        problem = header_problem(values[f])
        if problem:  # caught now, not on every later request; the value is not shown
            raise UsageError(f"the {f} cannot be sent in an HTTP header: {problem}")
    values.update(
        api_url=api_url,
        signed=not unsigned,
        project=project,
        backend=backend,
        **{"from": from_},
    )
    became_default = save_profile(app.config_path, name, values, make_default=make_default)
    verb = "replaced" if existed else "added"
    note = " (the default profile)" if became_default else ""
    click.echo(f"{verb} profile {name!r} in {app.config_path}{note}")


@keys.command("list")
@output_options
@click.pass_obj
def list_(app: Any, output: OutputSpec) -> None:
    """List profiles: name, key, API URL, signed, default.

    The secret and passphrase are never shown.
    """
    from outkit_cli.config import load_config
    from outkit_cli.output import emit, field_value

    records = list_records(load_config(app.config_path))

    def human() -> None:
        if not records:
            click.echo("no profiles yet: add one with `outkit keys add NAME`", err=True)
            return
        if _stdout_is_tty():
            from outkit_cli.output import print_table

            print_table(records, LIST_COLUMNS, formatters={"default": _default_marker})
            return
        # not a terminal: plain text, and rich is never imported
        rows = [[heading for _, heading in LIST_COLUMNS]]
        for rec in records:
            rows.append(
                [_default_marker(rec[f]) if f == "default" else field_value(rec[f])
                 for f, _ in LIST_COLUMNS]
            )  # fmt: skip
        click.echo(plain_rows(rows))

    emit(output, records, single=False, human=human)


@keys.command("show")
@click.argument("name", required=False, shell_complete=complete_profile)
@click.option("--reveal", is_flag=True, help="Show the secret and passphrase unmasked.")
@output_options
@click.pass_obj
def show(app: Any, name: str | None, reveal: bool, output: OutputSpec) -> None:
    """Show a profile, secrets masked.

    Without NAME, the default profile. --reveal shows the secret and passphrase.
    """
    from outkit_cli.config import default_profile_name, load_config, profiles, unknown_profile
    from outkit_cli.errors import UsageError
    from outkit_cli.output import emit, field_value, mask

    data = load_config(app.config_path)
    default = default_profile_name(data)
    name = name or default
    if name is None:
        if not profiles(data):
            raise UsageError("no profiles yet: add one with `outkit keys add NAME`")
        raise UsageError("no default profile: name one, or set it with `outkit keys default`")
    prof = profiles(data).get(name)
    if prof is None:
        raise unknown_profile(name, data)
    record = profile_record(name, prof, default)
    if not reveal:
        for f in ("secret", "passphrase"):
            record[f] = mask(record[f]) or None
    # people see the fields that are set; --json keeps every key for scripts
    shown = [f for f in SHOW_FIELDS if record[f] is not None]

    def human() -> None:
        if _stdout_is_tty():
            from outkit_cli.output import print_record

            print_record(record, shown)
        else:
            click.echo(plain_rows([[f, field_value(record[f])] for f in shown]))

    emit(output, [record], single=True, human=human)


@keys.command("remove")
@click.argument("name", shell_complete=complete_profile)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def remove(app: Any, name: str, yes: bool) -> None:
    """Remove the profile NAME.

    Asks first on a terminal; in scripts pass --yes.
    """
    from outkit_cli.config import edit_config, load_config, profiles, unknown_profile
    from outkit_cli.errors import UsageError

    data = load_config(app.config_path)
    if name not in profiles(data):
        raise unknown_profile(name, data)
    if not yes:
        if not _stdin_is_tty():
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


@keys.command("default")
@click.argument("name", required=False, shell_complete=complete_profile)
@click.pass_obj
def default(app: Any, name: str | None) -> None:
    """Set (or print) the default profile.

    Without NAME, prints the default profile's name.
    """
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


# `keys test` lives in its own module (it talks to the API); attached here, at the end,
# so that the group above is complete before the import.
from outkit_cli.commands.keys_test import keys_test  # noqa: E402

keys.add_command(keys_test, "test")
