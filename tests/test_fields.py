"""fields.py is the one declaration of the message fields: every consumer knows every
declared field (send's options, the builder, the record view, the sandbox's validation,
stored object and delivered headers, the batch's columns, docs/send.md), and every field a
client may send goes through `send` and comes back from `get --json` as given.

A field added to fields.FIELDS is tested here with no change to this file: its sample
value comes from its declaration (SPECIAL holds the fields whose value must name something
that exists in the sandbox, or that change the shape of the message).
"""

from __future__ import annotations

import email
import email.policy
import html
import http.client
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from outkit_cli import fields
from outkit_cli.fields import Field
from outkit_cli.sandbox.templates import stable_id
from tests.helpers import run
from tests.sandbox_fixture import Sandbox

ROOT = Path(__file__).resolve().parent.parent
OPTIONED = [f for f in fields.SENT if f.type in ("string", "bool")]
# The fields a message is built on when it is not the field under test.
BASE = {"to": "jane@example.com", "project": "demo", "text_body": "hello"}
# Ways of giving content: a message holds one of them (message.check_shape).
CONTENT = {"template", "template_id", "html_template_body", "text_template_body", "html_body",
           "text_body", "template_styles"}  # fmt: skip
# Values that must name what exists in the sandbox, or that need other fields with them.
SPECIAL: dict[str, dict[str, Any]] = {
    "type": {"type": "sms", "to": "+4790000000"},
    "from": {"from": "Sender <sender@example.com>"},
    "template": {"template": "welcome"},
    "template_id": {"template_id": stable_id("template", "demo", "welcome")},
    "project": {"project": "demo"},
    "project_id": {"project_id": stable_id("project", "demo")},
    "backend": {"backend": "outbox"},
    "backend_id": {"backend_id": stable_id("backend", "outbox")},
    "html_template_body": {"html_template_body": "<p>{{name}}</p>"},
    "text_template_body": {"text_template_body": "Hi {{name}}"},
    "template_styles": {"template_styles": "p { color: red }", "html_template_body": "<p>x</p>"},
}


def sample(field: Field) -> Any:
    """A value the field accepts, from its declaration."""
    if field.type == "bool":
        return True
    if field.type == "object":
        return {"sample": "value"}
    if field.email_address:
        return f"{field.name.replace('_', '-')}@example.com"
    return f"sample {field.name}"


def message_for(field: Field) -> dict[str, Any]:
    """A message that sends `field` with a sample value (and passes the checks)."""
    given = SPECIAL.get(field.name, {field.name: sample(field)})
    msg = {k: v for k, v in BASE.items() if not (k in CONTENT and CONTENT & set(given))}
    if {"project", "project_id"} & set(given):
        msg.pop("project")
    msg.update(given)
    if field.name == "id_from_submitter":
        msg["id_from_submitter"] = f"fields-{uuid.uuid4()}"
    return msg


def send_args(msg: dict[str, Any]) -> list[str]:
    """`outkit send` options for a message, read from the declaration."""
    args: list[str] = []
    for name, value in msg.items():
        field = fields.BY_NAME[name]
        if field.type == "bool":
            args.append(field.option if value else f"--no-{field.option[2:]}")  # type: ignore[index]
        elif field.type == "object":
            args += [a for k, v in value.items() for a in ("--data", f"{k}={v}")]
        else:
            assert field.option is not None
            args += [field.option, value]
    return args


# -- the declaration ----------------------------------------------------------------------


def test_every_field_is_declared_once_with_what_its_consumers_need() -> None:
    names = [f.name for f in fields.FIELDS]
    assert len(names) == len(set(names))
    for f in fields.FIELDS:
        assert f.type in ("string", "bool", "object"), f
        assert f.sent or f.answered, f"{f.name}: neither sent nor answered"
        if f.sent:
            assert f.option and f.option.startswith("--"), f"{f.name}: no send option"
            assert f.type == "object" or f.help, f"{f.name}: no help for {f.option}"
        if f.header or f.email_address or f.max_bytes or f.max_chars or f.file:
            assert f.type == "string", f"{f.name}: a text rule on a {f.type} field"
        if f.mailbox:
            assert f.header, f"{f.name}: a mailbox that is not a header"
    options = [f.option for f in fields.SENT]
    assert len(options) == len(set(options))


def test_fields_py_imports_nothing_from_the_cli_side() -> None:
    """The sandbox stands alone and imports fields.py: it must stay plain data."""
    code = (
        "import sys, outkit_cli.fields; "
        "print(sorted(m for m in sys.modules if m.startswith('outkit_cli') "
        "or m.split('.')[0] in ('click', 'rich', 'requests', 'urllib3')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(out.stdout.replace("'", '"')) == ["outkit_cli", "outkit_cli.fields"]


# -- every consumer knows every field -------------------------------------------------------


def test_send_has_an_option_for_every_field_a_client_sends() -> None:
    import click

    from outkit_cli.commands.send import OPTION_FIELDS, send

    opts = {o: p for p in send.params if isinstance(p, click.Option) for o in p.opts}
    for f in fields.SENT:
        assert f.option in opts, f"send has no {f.option} for {f.name}"
        if f.short:
            assert opts[f.short] is opts[f.option]
        if f.type != "object":
            param = opts[f.option]
            assert OPTION_FIELDS[param.name or ""] == f.name
            assert f.help in (param.help or "")
            if f.type == "bool":
                assert f"--no-{f.option[2:]}" in param.secondary_opts


@pytest.mark.parametrize("field", fields.SENT, ids=lambda f: f.name)
def test_the_builder_takes_every_field(field: Field) -> None:
    from outkit_cli.message import MessageInput, validate_message

    msg = message_for(field)
    options = {k: v for k, v in msg.items() if k != "data"}
    built = MessageInput(
        options=options, data_items=tuple(f"{k}={v}" for k, v in msg.get("data", {}).items())
    ).build()
    validate_message(built)
    assert built[field.name] == msg[field.name]


def test_a_batch_takes_every_field_as_a_csv_column(tmp_path: Path) -> None:
    """A header naming every field a client sends is accepted (an unknown column is exit
    2 before anything is sent); each row inherits the rest from the options."""
    names = [f.name for f in fields.SENT]
    rows = tmp_path / "rows.csv"
    cells = ["row@example.com" if name == "to" else "" for name in names]  # empty: inherited
    rows.write_text(",".join(names) + "\n" + ",".join(cells) + "\n", "utf-8")
    result = run(
        "send", "--batch", str(rows), "--dry-run", *send_args(BASE),
        env={"OUTKIT_API_URL": "http://127.0.0.1:9/v1"},
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert [json.loads(line)["status"] for line in result.stdout.splitlines()] == ["valid"]


def test_the_docs_list_every_option_and_field() -> None:
    page = (ROOT / "docs" / "send.md").read_text("utf-8")
    for f in fields.SENT:
        assert f"`{f.name}`" in page, f"docs/send.md does not name the field {f.name}"
        assert f.option in page, f"docs/send.md does not name {f.option}"


def test_the_sandbox_checks_the_type_of_every_field(sandbox: Sandbox) -> None:
    wrong = {"string": 5, "bool": "yes", "object": "x"}
    for f in fields.SENT:
        msg = {"type": "email", **message_for(f), f.name: wrong[f.type]}
        status, doc = sandbox.request("POST", "/messages", {"message": msg})
        assert status == 422, (f.name, doc)
        assert f"message.{f.name}" in doc["error"]["message"]


# -- the rules a field declares hold in the CLI (exit 2) and the sandbox (422) ---------------


def refused(sandbox: Sandbox, field: Field, msg: dict[str, Any], why: str) -> None:
    """`send` refuses the message before sending (exit 2 naming the option) and the
    sandbox refuses it too (422 naming the field)."""
    result = run("send", "--dry-run", *send_args(msg), env=sandbox.env())
    assert result.exit_code == 2, (field.name, result.stdout)
    assert why in result.stderr, result.stderr
    # `to` is called the recipient (check_recipient); every other field by its option
    assert (field.option or "") in result.stderr or "recipient" in result.stderr
    status, doc = sandbox.request("POST", "/messages", {"message": {"type": "email", **msg}})
    assert status == 422, (field.name, doc)
    assert f"message.{field.name}" in doc["error"]["message"] and why in doc["error"]["message"]


@pytest.mark.parametrize("field", fields.HEADER_FIELDS, ids=lambda f: f.name)
def test_a_header_field_with_a_line_break_is_refused(sandbox: Sandbox, field: Field) -> None:
    msg = message_for(field)
    msg[field.name] += "\r\nBcc: victim@example.com"
    refused(sandbox, field, msg, "line break")


@pytest.mark.parametrize("field", [f for f in fields.SENT if f.email_address], ids=lambda f: f.name)
def test_an_email_address_field_without_an_at_is_refused(sandbox: Sandbox, field: Field) -> None:
    refused(sandbox, field, {**message_for(field), field.name: "Jane Doe"}, "not an email address")


@pytest.mark.parametrize("field", [f for f in fields.SENT if f.email_only], ids=lambda f: f.name)
def test_an_email_only_field_on_an_sms_is_refused(field: Field) -> None:
    msg = {**message_for(field), "type": "sms", "to": "+4790000000"}
    result = run(
        "send", "--dry-run", *send_args(msg), env={"OUTKIT_API_URL": "http://127.0.0.1:9/v1"}
    )
    assert result.exit_code == 2, result.stdout
    assert "an sms message has no" in result.stderr and field.option in result.stderr


@pytest.mark.parametrize(
    "field", [f for f in fields.SENT if f.max_bytes or f.max_chars], ids=lambda f: f.name
)
def test_the_sandbox_holds_a_field_to_its_size_limit(sandbox: Sandbox, field: Field) -> None:
    msg = {"type": "email", **message_for(field)}
    over = (field.max_bytes or field.max_chars or 0) + 1
    msg[field.name] = "a" * over
    status, doc = sandbox.request("POST", "/messages", {"message": msg})
    assert status == 422, (field.name, doc)
    assert f"message.{field.name}" in doc["error"]["message"]
    assert f"{over - 1:,}" in doc["error"]["message"]  # names the limit
    msg[field.name] = "a" * (over - 1)
    status, doc = sandbox.request("POST", "/messages", {"message": msg})
    assert status == 200, (field.name, doc)


def inbox_page(sandbox: Sandbox, message_id: str) -> str:
    parts = urlsplit(sandbox.inbox_url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        conn.request("GET", f"/messages/{message_id}")
        resp = conn.getresponse()
        assert resp.status == 200
        return resp.read().decode("utf-8")
    finally:
        conn.close()


# -- every field round-trips: send, then get --json --------------------------------------------


@pytest.mark.parametrize("field", fields.SENT, ids=lambda f: f.name)
def test_every_field_goes_through_send_and_comes_back_from_get(
    sandbox: Sandbox, field: Field
) -> None:
    msg = message_for(field)
    sent = run("send", "-q", *send_args(msg), env=sandbox.env())
    assert sent.exit_code == 0, sent.stderr
    message_id = sent.stdout.strip()

    wait = field.header is not None and msg.get("type", "email") == "email"
    got = run("get", message_id, "--json", *(["--wait"] if wait else []), env=sandbox.env())
    assert got.exit_code == 0, got.stderr
    answer = json.loads(got.stdout)
    assert set(fields.ANSWERED_FIELDS) <= set(answer)
    assert answer[field.name] == msg[field.name]

    if field.shown:  # the record view (plain: stdout is not a terminal here)
        view = run("get", message_id, env=sandbox.env())
        assert any(line.split()[:1] == [field.name] for line in view.stdout.splitlines())
    if wait:  # delivered to the outbox with the field in its header
        assert answer["status"] == "delivered", answer
        raw = Path(answer["backend_response"]["path"]).read_bytes()
        delivered = email.message_from_bytes(raw, policy=email.policy.default)
        assert str(delivered[field.header]) == msg[field.name]
        # and the inbox's message page shows it
        assert html.escape(msg[field.name], quote=False) in inbox_page(sandbox, message_id)
