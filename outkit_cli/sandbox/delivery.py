"""Delivery backends: `outbox` (a Maildir plus an SMS log in the data dir) and `smtp`.

Each `deliver` returns (id_from_backend, backend_response) or raises BackendError.
Emails are RFC 5322 messages built with the stdlib `email` package: From, To, Subject,
Date, Message-ID, and text + HTML alternatives.
"""

from __future__ import annotations

import json
import threading
from email.message import EmailMessage
from email.utils import formatdate, getaddresses, make_msgid, parseaddr
from pathlib import Path
from typing import Any

from outkit_cli.sandbox.errors import BackendError

MSGID_DOMAIN = "sandbox.outkit.invalid"


def build_email(doc: dict[str, Any]) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = doc["from"]
    msg["To"] = doc["to"]
    if doc.get("subject") is not None:
        msg["Subject"] = doc["subject"]
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = make_msgid(domain=MSGID_DOMAIN)
    msg["X-Outkit-Message-Id"] = doc["id"]
    text, html = doc.get("text_body"), doc.get("html_body")
    if text is not None:
        msg.set_content(text)
        if html is not None:
            msg.add_alternative(html, subtype="html")
    elif html is not None:
        msg.set_content(html, subtype="html")
    else:
        msg.set_content("")
    return msg


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
            msg = build_email(doc)
            with self._lock:
                key = self._maildir.add(msg)
        except (OSError, ValueError) as exc:
            raise BackendError(f"outbox: {exc}") from None
        path = self.directory / "new" / key
        return msg["Message-ID"], {"backend": "outbox", "path": str(path)}

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
        msg = build_email(doc)
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
                code, resp = smtp.data(msg.as_bytes())
                if code != 250:
                    raise BackendError(
                        f"{where}: DATA refused: {code} {resp.decode(errors='replace')}"
                    )
        except BackendError:
            raise
        except (OSError, smtplib.SMTPException) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise BackendError(f"{where}: {reason or type(exc).__name__}") from None
        return msg["Message-ID"], {
            "backend": "smtp",
            "server": f"{self.host}:{self.port}",
            "code": code,
            "response": resp.decode("utf-8", "replace"),
        }
