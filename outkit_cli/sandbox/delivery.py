"""Delivery backends: `outbox` (a Maildir plus an SMS log in the data dir) and `smtp`.

Each `deliver` returns (id_from_backend, backend_response) or raises BackendError.
Emails are RFC 5322 messages built with the stdlib `email` package: From, To, Subject,
Date, Message-ID, and text + HTML alternatives.
"""

from __future__ import annotations

import json
import quopri
import threading
import uuid
from email.header import Header
from email.utils import formataddr, formatdate, getaddresses, make_msgid, parseaddr
from pathlib import Path
from typing import Any

from outkit_cli.sandbox.errors import BackendError

MSGID_DOMAIN = "sandbox.outkit.invalid"


def _header(value: str) -> str:
    if value.isascii() and len(value) < 900:
        return value
    return Header(value, "utf-8").encode()


def _addresses(value: str) -> str:
    if value.isascii() and "," not in value and '"' not in value:
        return value  # one plain address, or `Name <a@b.c>`: already valid as it is
    out = []
    for name, addr in getaddresses([value]):
        out.append(formataddr((name, addr), "utf-8") if name else addr)
    return ", ".join(out)


def _part(text: str, subtype: str) -> bytes:
    body = quopri.encodestring(text.replace("\r\n", "\n").encode("utf-8"))
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"\n'
        "Content-Transfer-Encoding: quoted-printable\n\n"
    ).encode("ascii") + body


def build_email(doc: dict[str, Any]) -> tuple[str, bytes]:
    """(Message-ID, the RFC 5322 message as bytes, LF line ends as in a Maildir; the SMTP
    backend turns them into CRLF).

    Assembled directly: the `email` package's generator takes milliseconds per message,
    which would take the server's time from answering requests. Non-ASCII headers are
    RFC 2047 encoded, bodies quoted-printable UTF-8; tests parse the result with the
    `email` package.
    """
    message_id = make_msgid(domain=MSGID_DOMAIN)
    headers = [
        f"From: {_addresses(doc['from'])}",
        f"To: {_addresses(doc['to'])}",
    ]
    if doc.get("subject") is not None:
        headers.append(f"Subject: {_header(doc['subject'])}")
    headers += [
        f"Date: {formatdate(usegmt=True)}",
        f"Message-ID: {message_id}",
        f"X-Outkit-Message-Id: {doc['id']}",
        "MIME-Version: 1.0",
    ]
    text, html = doc.get("text_body"), doc.get("html_body")
    head = ("\n".join(headers) + "\n").encode("utf-8")
    if text is not None and html is not None:
        boundary = f"=_outkit_{uuid.uuid4().hex}"
        body = (
            f'Content-Type: multipart/alternative; boundary="{boundary}"\n\n'.encode()
            + f"--{boundary}\n".encode()
            + _part(text, "plain")
            + f"\n--{boundary}\n".encode()
            + _part(html, "html")
            + f"\n--{boundary}--\n".encode()
        )
    elif html is not None:
        body = _part(html, "html")
    else:
        body = _part(text or "", "plain")
    return message_id, head + body


class Outbox:
    """Emails into a Maildir (`<dir>/new/`), SMS as JSON lines in `<dir>/sms.jsonl`."""

    name = "outbox"

    def __init__(self, directory: Path) -> None:
        import mailbox

        self.directory = directory
        self.sms_log = directory / "sms.jsonl"
        self._maildir = mailbox.Maildir(directory, create=True)
        self._lock = threading.Lock()

    def deliver(self, doc: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        try:
            if doc["type"] == "sms":
                return self._sms(doc)
            message_id, raw = build_email(doc)
            with self._lock:
                key = self._maildir.add(raw)
        except (OSError, ValueError) as exc:
            raise BackendError(f"outbox: {exc}") from None
        path = self.directory / "new" / key
        return message_id, {"backend": "outbox", "path": str(path)}

    def _sms(self, doc: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        sms_id = f"sms-{doc['id']}"
        line = {
            "id": sms_id,
            "message_id": doc["id"],
            "from": doc["from"],
            "to": doc["to"],
            "text": doc.get("text_body") or "",
        }
        with self._lock, self.sms_log.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(line, ensure_ascii=False) + "\n")
        return sms_id, {"backend": "outbox", "path": str(self.sms_log)}


class Smtp:
    """Hands emails to a real SMTP server (`--smtp HOST:PORT`), no TLS, no auth."""

    name = "smtp"

    def __init__(self, host: str, port: int, timeout: float = 10.0) -> None:
        self.host, self.port, self.timeout = host, port, timeout

    def deliver(self, doc: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        import smtplib

        where = f"smtp {self.host}:{self.port}"
        if doc["type"] != "email":
            raise BackendError(f"{where}: cannot deliver {doc['type']} messages")
        message_id, raw = build_email(doc)
        sender = parseaddr(doc["from"])[1]
        recipients = [addr for _, addr in getaddresses([doc["to"]]) if addr]
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                smtp.ehlo_or_helo_if_needed()
                code, resp = smtp.mail(sender)
                if code != 250:
                    raise BackendError(f"{where}: MAIL FROM refused: {code} {resp.decode()}")
                for rcpt in recipients:
                    code, resp = smtp.rcpt(rcpt)
                    if code not in (250, 251):
                        raise BackendError(
                            f"{where}: RCPT TO {rcpt} refused: {code} "
                            f"{resp.decode(errors='replace')}"
                        )
                code, resp = smtp.data(raw.replace(b"\n", b"\r\n"))  # bytes are sent as they are
                if code != 250:
                    raise BackendError(
                        f"{where}: DATA refused: {code} {resp.decode(errors='replace')}"
                    )
        except BackendError:
            raise
        except (OSError, smtplib.SMTPException) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise BackendError(f"{where}: {reason or type(exc).__name__}") from None
        return message_id, {
            "backend": "smtp",
            "server": f"{self.host}:{self.port}",
            "code": code,
            "response": resp.decode("utf-8", "replace"),
        }
