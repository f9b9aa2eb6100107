"""How messages are shown: the people's view and the scripts' views (JSON, fields).

On a terminal the people's view is drawn with rich (table, coloured status). When stdout
is a pipe or a file the same view is plain aligned text: nothing to colour, and `outkit
get` in a script loop then never pays for importing rich.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

import click

from outkit_cli import fields
from outkit_cli.output import (
    OutputSpec,
    emit,
    plain_rows,
    print_record,
    shown,
)
from outkit_cli.terminal import current as current_terminal
from outkit_cli.terminal import shell_quote

# Fields of the single-message view, in order (fields.py's `shown`); empty ones are left
# out except the first two.
RECORD_FIELDS = fields.RECORD_FIELDS
TABLE_COLUMNS = (
    ("id", "ID"),
    ("status", "STATUS"),
    ("to", "TO"),
    ("subject", "SUBJECT"),
    ("received_at", "RECEIVED (UTC)"),
)
ALWAYS = {"id", "status"}
# the statuses a message ends well in (`rendered` with render_only)
GOOD_ENDS = frozenset({"delivered", "rendered"})


def status_style(value: Any) -> str | None:
    """A status's colour: red for the error statuses, green for the good ends, yellow for
    the steps between."""
    from outkit_cli.message import ERROR_STATUSES

    if not isinstance(value, str) or not value:
        return None
    return "red" if value in ERROR_STATUSES else "green" if value in GOOD_ENDS else "yellow"


def _status(value: Any) -> str:
    """A status in rich markup (status_style's colour), for the record view."""
    from rich.markup import escape

    style = status_style(value)
    if style is None:
        return ""
    # server text: no terminal controls, and no rich markup either ("[link=...]")
    return f"[{style}]{escape(shown(value))}[/{style}]"


def show_messages(spec: OutputSpec, messages: Sequence[Mapping[str, Any]], *, single: bool) -> None:
    """One message: field/value lines (or the JSON object); several: a table (or an array)."""

    def human() -> None:
        tty = current_terminal().stdout_tty
        if single and len(messages) == 1:
            msg = messages[0]
            names = [n for n in RECORD_FIELDS if n in ALWAYS or msg.get(n) not in (None, "", False)]
            if tty:
                print_record(msg, names, formatters={"status": _status})
            else:
                _plain_record(msg, names)
        elif messages:
            if tty:
                print_message_table(messages)
            else:
                _plain_table(messages)
        elif tty:
            # a person looking at an empty list gets told so (a pipe gets nothing, as
            # `grep` prints nothing: scripts count lines)
            click.echo("no messages", err=True)

    if single and not messages:
        return
    emit(spec, messages, single=single, human=human)


def _plain_record(msg: Mapping[str, Any], names: Sequence[str]) -> None:
    width = max(len(n) for n in names)
    lines = [f"{n:<{width}}  {shown(msg.get(n))}".rstrip() for n in names]
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


def _plain_table(messages: Sequence[Mapping[str, Any]]) -> None:
    rows = [[heading for _, heading in TABLE_COLUMNS]]
    for msg in messages:
        rows.append(
            [
                _short_time(msg.get(n)) if n == "received_at" else shown(msg.get(n))
                for n, _ in TABLE_COLUMNS
            ]
        )
    sys.stdout.write(plain_rows(rows) + "\n")
    sys.stdout.flush()


def _short_time(value: Any) -> str:
    # 2018-04-21T09:02:24.607840Z -> 2018-04-21 09:02:24: the table is for reading
    text = shown(value)
    return text[:19].replace("T", " ") if len(text) >= 19 else text


def print_message_table(messages: Sequence[Mapping[str, Any]]) -> None:
    """A row per message; ids and statuses never wrap or shorten (people copy ids from
    here): the recipient and subject give way first, then the time column is left out
    (with a note on stderr)."""
    from outkit_cli.output import KEEP, OPTIONAL, print_table

    print_table(
        messages,
        TABLE_COLUMNS,
        rules={"id": KEEP, "status": KEEP, "received_at": OPTIONAL},
        formatters={"received_at": _short_time},
        styles={"status": status_style},
    )


def print_prepared(call: Any, headers: Mapping[str, str]) -> None:
    """An HTTP request as text: request line, headers (already masked), blank line, body."""
    term = current_terminal()
    click.echo(term.raw(f"{call.method} {call.url}"))
    for name, value in headers.items():
        click.echo(term.raw(f"{name}: {value}"))
    click.echo("")
    if call.body:
        click.echo(term.raw(call.body.decode("utf-8"), multiline=True))


# curl computes or chooses these itself
_CURL_SKIP = {"content-length", "connection", "accept-encoding"}


def curl_command(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes = b"",
    body_file: str | None = None,
    *,
    multipart: bool = False,
) -> str:
    """A runnable curl command (`sign --curl`, `send --curl`): every argument shell-quoted
    (terminal.shell_quote: POSIX sh, or $'...' around a control character), one option and
    its value per line.

    The body goes as ``--data-raw`` (not ``--data``/``--data-binary``: a body starting with
    ``@`` must not be read as a file name); a body that is not UTF-8 text or holds NUL
    bytes cannot be on a command line, so it is referred to as ``--data-binary @FILE``
    when it came from `body_file`. With `multipart` the body goes as the `message` part of
    a multipart/form-data create (``--form-string``: -F would read a leading @ or < as a
    file; files can be added with -F 'attachments[]=@FILE', the signature does not cover
    them).

    Raises:
        UsageError: such a body came from stdin or an argument.
    """
    from outkit_cli.errors import UsageError

    args = ["curl", "-sS", "-X", method, shell_quote(url)]
    for name, value in headers.items():
        if name.lower() not in _CURL_SKIP:
            args += ["-H", shell_quote(f"{name}: {value}")]
    if multipart and body:
        try:
            form_text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise UsageError("--multipart: the message part must be UTF-8 JSON text") from None
        args += ["--form-string", shell_quote("message=" + form_text)]
    elif body:
        if not any(name.lower() == "content-type" for name in headers):
            args += ["-H", shell_quote("Content-Type: application/json")]
        try:
            text: str | None = body.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is not None and "\x00" not in text:
            args += ["--data-raw", shell_quote(text)]
        elif body_file and body_file != "-":
            args += ["--data-binary", shell_quote("@" + body_file)]
        else:
            raise UsageError(
                "this body is not UTF-8 text (or holds NUL bytes), so it cannot be put on a "
                "command line; give it with --body-file PATH instead of stdin"
            )
    lines = [" ".join(args[:5])]
    lines += [f"{args[i]} {args[i + 1]}" for i in range(5, len(args), 2)]
    return " \\\n  ".join(lines)


def secret_warning(*, signed: bool) -> str:
    """The stderr warning of `--curl`: the command carries credentials (shell history,
    logs, screen shares)."""
    if not signed:
        return "this command contains the key's secret (the key does not sign requests)"
    return (
        "this command contains the passphrase; the signature is tied to its timestamp: "
        "run it within a few minutes"
    )
