"""How messages are shown: the people's view (rich) and the scripts' views (JSON, fields)."""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from typing import Any

import click

from outkit_cli.output import OutputSpec, emit, print_record, print_table, styled_status

# Fields of the single-message view, in order; empty ones are left out except the first two.
RECORD_FIELDS = (
    "id",
    "status",
    "status_message",
    "done",
    "type",
    "to",
    "from",
    "subject",
    "template",
    "project",
    "backend",
    "id_from_submitter",
    "render_only",
    "test",
    "received_at",
    "rendered_at",
    "delivered_at",
    "failed_at",
)
TABLE_COLUMNS = (
    ("id", "ID"),
    ("status", "STATUS"),
    ("type", "TYPE"),
    ("to", "TO"),
    ("subject", "SUBJECT"),
    ("received_at", "RECEIVED"),
)
ALWAYS = {"id", "status"}


def _status(value: Any) -> str:
    return styled_status(value if isinstance(value, str) else None)


def show_messages(spec: OutputSpec, messages: Sequence[Mapping[str, Any]], *, single: bool) -> None:
    """One message: field/value lines (or the JSON object); several: a table (or an array)."""

    def human() -> None:
        if single and len(messages) == 1:
            msg = messages[0]
            names = [n for n in RECORD_FIELDS if n in ALWAYS or msg.get(n) not in (None, "", False)]
            print_record(msg, names, formatters={"status": _status})
        elif messages:
            print_table(messages, TABLE_COLUMNS, formatters={"status": _status})

    if single and not messages:
        return
    emit(spec, messages, single=single, human=human)


def print_prepared(call: Any, headers: Mapping[str, str]) -> None:
    """An HTTP request as text: request line, headers (already masked), blank line, body."""
    click.echo(f"{call.method} {call.url}")
    for name, value in headers.items():
        click.echo(f"{name}: {value}")
    click.echo("")
    if call.body:
        click.echo(call.body.decode("utf-8"))


# curl computes or chooses these itself
_CURL_SKIP = {"content-length", "connection", "accept-encoding"}


def curl_command(call: Any) -> str:
    """A runnable curl command for the prepared call, every value shell-quoted."""
    parts = [f"curl -sS -X {call.method} {shlex.quote(call.url)}"]
    for name, value in call.headers.items():
        if name.lower() not in _CURL_SKIP:
            parts.append(f"-H {shlex.quote(f'{name}: {value}')}")
    if call.body:
        # --data-binary sends the bytes unchanged (the signature covers them exactly)
        parts.append(f"--data-binary {shlex.quote(call.body.decode('utf-8'))}")
    return " \\\n  ".join(parts)
