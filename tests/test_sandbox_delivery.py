"""Delivery: the Maildir outbox holds real RFC 5322 messages; SMTP goes to a real server."""

from __future__ import annotations

import email
import email.policy
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.sandbox_fixture import Sandbox
from tests.test_sandbox_api import WELCOME, post

Start = Callable[..., Sandbox]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _parse(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


def _outbox_file(sb: Sandbox, msg: dict[str, Any]) -> bytes:
    path = msg["backend_response"]["path"]
    assert path.startswith(str(sb.outbox() / "new"))
    with open(path, "rb") as fh:
        return fh.read()


def test_outbox_email_is_a_multipart_rfc5322_message(sandbox: Sandbox) -> None:
    _, doc = post(
        sandbox,
        {**WELCOME, "to": "Zoë Ørsted <zoe@example.com>", "data": {"name": "Zoë"}, "sync": True},
    )
    msg = doc["data"]
    parsed = _parse(_outbox_file(sandbox, msg))
    assert parsed["Subject"] == "Welcome to Outkit Sandbox, Zoë!"
    assert parsed["To"].addresses[0].display_name == "Zoë Ørsted"
    assert parsed["To"].addresses[0].addr_spec == "zoe@example.com"
    assert parsed["From"].addresses[0].addr_spec == "welcome@outkit.invalid"
    assert parsed["Message-ID"] == msg["id_from_backend"]
    assert parsed["X-Outkit-Message-Id"] == msg["id"]
    assert parsed["Date"] is not None
    assert parsed.get_content_type() == "multipart/alternative"
    text = parsed.get_body(("plain",))
    html = parsed.get_body(("html",))
    assert text is not None and html is not None
    assert text.get_content().replace("\r\n", "\n") == msg["text_body"]
    assert html.get_content().replace("\r\n", "\n") == msg["html_body"]


@pytest.mark.parametrize(
    ("parts", "content_type"),
    [({"html_body": "<p>only html</p>"}, "text/html"), ({"text_body": "only text"}, "text/plain")],
)
def test_single_part_emails(sandbox: Sandbox, parts: dict[str, str], content_type: str) -> None:
    _, doc = post(
        sandbox,
        {"type": "email", "to": "a@example.com", "project": "demo", "subject": "One part",
         "sync": True, **parts},
    )  # fmt: skip
    parsed = _parse(_outbox_file(sandbox, doc["data"]))
    assert parsed.get_content_type() == content_type
    assert parsed.get_content().strip() == next(iter(parts.values()))


def test_long_lines_and_multiple_recipients_survive(sandbox: Sandbox) -> None:
    line = "x" * 2000 + " é"
    _, doc = post(
        sandbox,
        {"type": "email", "to": '"Doe, Jane" <jane@example.com>, bob@example.com',
         "project": "demo", "subject": "s" * 1200, "text_body": line, "sync": True},
    )  # fmt: skip
    raw = _outbox_file(sandbox, doc["data"])
    assert max(len(x) for x in raw.split(b"\n")) <= 998  # RFC 5322 line limit
    parsed = _parse(raw)
    assert [a.addr_spec for a in parsed["To"].addresses] == ["jane@example.com", "bob@example.com"]
    assert parsed["Subject"] == "s" * 1200
    assert parsed.get_content().rstrip("\n") == line


class _Recorder:
    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 OK queued as sbx-test-1"


@pytest.fixture
def smtp_server() -> Iterator[tuple[str, _Recorder]]:
    from aiosmtpd.controller import Controller

    recorder = _Recorder()
    port = _free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port)
    controller.start()
    yield f"127.0.0.1:{port}", recorder
    controller.stop()


def test_smtp_backend_delivers_to_a_real_server(
    start_sandbox: Start, smtp_server: tuple[str, _Recorder]
) -> None:
    address, recorder = smtp_server
    sb = start_sandbox(smtp=address)
    status, doc = post(sb, {**WELCOME, "to": "Ada <ada@example.com>", "data": {"name": "Ada"}})
    assert status == 200 and doc["data"]["backend"] == "smtp"
    msg = sb.wait_done(doc["data"]["id"])
    assert msg["status"] == "delivered", msg["status_message"]
    assert msg["backend_response"]["code"] == 250
    assert "sbx-test-1" in msg["backend_response"]["response"]
    (envelope,) = recorder.envelopes
    assert envelope.mail_from == "welcome@outkit.invalid"
    assert envelope.rcpt_tos == ["ada@example.com"]
    parsed = _parse(envelope.content)
    assert parsed["Message-ID"] == msg["id_from_backend"]
    assert parsed["Subject"] == "Welcome to Outkit Sandbox, Ada!"
    assert not list((sb.outbox() / "new").iterdir())
    # the outbox stays selectable per message, and SMS still go there
    _, doc = post(sb, {**WELCOME, "backend": "outbox", "sync": True})
    assert doc["data"]["status"] == "delivered" and len(recorder.envelopes) == 1
    _, doc = post(sb, {"type": "sms", "to": "+1", "project": "demo", "template": "reminder",
                       "sync": True})  # fmt: skip
    assert doc["data"]["backend"] == "outbox" and doc["data"]["status"] == "delivered"


def test_unreachable_smtp_server_gives_backend_error(start_sandbox: Start) -> None:
    port = _free_port()  # nothing listens there
    sb = start_sandbox(smtp=f"127.0.0.1:{port}")
    status, doc = post(sb, WELCOME)
    assert status == 200
    msg = sb.wait_done(doc["data"]["id"])
    assert msg["status"] == "backend_error" and msg["done"] is True
    assert msg["status_message"].startswith(f"smtp 127.0.0.1:{port}: ")
    assert "refused" in msg["status_message"].lower()
    assert msg["failed_at"] and msg["delivered_at"] is None
    assert msg["rendered_at"] and msg["queued_for_delivery_at"]


def test_smtp_test_message_is_not_sent(
    start_sandbox: Start, smtp_server: tuple[str, _Recorder]
) -> None:
    address, recorder = smtp_server
    sb = start_sandbox(smtp=address)
    _, doc = post(sb, {**WELCOME, "test": True, "sync": True})
    assert doc["data"]["status"] == "delivered"
    time.sleep(0.1)
    assert recorder.envelopes == []


def test_the_outbox_is_a_maildir_that_mailbox_reads(tmp_path: Any) -> None:
    """Files land whole in new/ under unique names, private, nothing left in tmp/."""
    import mailbox
    import stat

    from outkit_cli.sandbox.delivery import Outbox

    outbox = Outbox(tmp_path / "outbox")
    doc = {"id": "m", "type": "email", "from": "a@example.com", "to": "b@example.com",
           "subject": "Hi", "text_body": "one", "html_body": None}  # fmt: skip
    paths = [outbox.deliver({**doc, "text_body": f"body {i}"})[1]["path"] for i in range(3)]
    assert len(set(paths)) == 3
    assert list((tmp_path / "outbox" / "tmp").iterdir()) == []
    for path in paths:
        assert (
            stat.S_IMODE((tmp_path / "outbox" / "new" / path.rsplit("/", 1)[1]).stat().st_mode)
            == 0o600
        )
    box = mailbox.Maildir(tmp_path / "outbox", create=False)
    bodies = sorted(m.get_payload(decode=True).decode().strip() for m in box)
    assert bodies == ["body 0", "body 1", "body 2"]
