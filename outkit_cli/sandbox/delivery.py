"""Delivery backends: `outbox` (a Maildir plus an SMS log in the data dir) and `smtp`.

Each `deliver` returns (id_from_backend, backend_response) or raises BackendError.
Emails are RFC 5322 messages built with the stdlib `email` package: the headers fields.py
declares (From, To, Subject), Date, Message-ID, and text + HTML alternatives.
"""

from __future__ import annotations

import contextlib
import json
import os
import quopri
import random
import re
import socket
import threading
import time
from collections.abc import Sequence
from email import policy
from email.header import Header
from email.utils import formataddr, formatdate, getaddresses, make_msgid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from outkit_cli.fields import HEADER_FIELDS
from outkit_cli.sandbox.errors import BackendError

if TYPE_CHECKING:
    from outkit_cli.sandbox.attachments import Attachment

MSGID_DOMAIN = "sandbox.outkit.invalid"
O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
# the header fields that hold addresses (From, To, ...): a non-ASCII local part needs SMTPUTF8
_MAILBOX_FIELDS = tuple(f.name for f in HEADER_FIELDS if f.mailbox)
# a plain ASCII address, alone or after a name of atext words: valid as written
_PLAIN = re.compile(
    r"(?:[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?: [A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)* )?"
    r"<[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+>"
    r"|[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+"
)
# body parts in 7 bits (quoted-printable or base64): any SMTP server carries them
_BODY_POLICY = policy.default.clone(linesep="\n", cte_type="7bit")


def _header(value: str) -> str:
    if value.isascii() and len(value) < 900 and value.isprintable():
        return value
    return Header(_printable(value), "utf-8").encode()


def idna_domain(domain: str) -> str:
    """A domain as it goes out in headers and the SMTP envelope: ASCII, IDN labels as
    A-labels (IDNA 2008 with UTS #46 mapping, `bücher.example` -> `xn--bcher-kva.example`).
    Raises BackendError for a domain IDNA cannot encode."""
    if domain.isascii():
        return domain
    import idna

    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise BackendError(
            f"the domain {domain!r} is not a valid internationalised domain name ({exc})"
        ) from None


def mailboxes(value: str) -> list[tuple[str, str, str]]:
    """(display name, local part, ASCII domain) for each address in a From or To value."""
    out = []
    for name, addr in getaddresses([value]):
        if not addr:
            continue
        local, _, domain = addr.rpartition("@")
        out.append((_printable(name), local or addr, idna_domain(domain) if local else ""))
    return out


def _printable(text: str) -> str:
    # a control character has no place in a header (the email package flags it as a
    # defect): a display name or subject keeps a space in its place
    return (
        text
        if text.isprintable()
        else "".join(c if c.isprintable() or c == " " else " " for c in text)
    )


def needs_smtputf8(doc: dict[str, Any]) -> str | None:
    """The first address whose local part is not ASCII (RFC 6531 needs SMTPUTF8 for it)."""
    for field in _MAILBOX_FIELDS:
        for _, local, domain in mailboxes(doc.get(field) or ""):
            if not local.isascii():
                return f"{local}@{domain}"
    return None


def _addresses(value: str) -> str:
    if _PLAIN.fullmatch(value):
        return value  # one plain address, or `Name <a@b.c>`: already valid as it is
    out = []
    for name, local, domain in mailboxes(value):
        addr = f"{local}@{domain}" if domain else local
        if not local.isascii():
            # goes out as UTF-8 (RFC 6532), which only SMTPUTF8 carries (formataddr
            # refuses a non-ASCII address)
            from email.headerregistry import Address

            out.append(str(Address(name, local, domain)))
        else:
            out.append(formataddr((name, addr), "utf-8") if name else addr)
    return ",\n ".join(out)  # folded: a long list stays under the line limit


def _part(text: str, subtype: str) -> bytes:
    body = quopri.encodestring(text.replace("\r\n", "\n").encode("utf-8"))
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"\n'
        "Content-Transfer-Encoding: quoted-printable\n\n"
    ).encode("ascii") + body


def _mime_body(text: str | None, html: str | None, files: Sequence[Attachment]) -> bytes:
    """The MIME body of an email with files, built by the stdlib `email` package:
    multipart/mixed around the text (and HTML, as multipart/related with its inline
    files, each with a Content-ID its `cid:` URLs name). Filenames go out as RFC 2231
    parameters when they are not ASCII."""
    from email.message import MIMEPart

    root = MIMEPart(policy=_BODY_POLICY)
    text = text.replace("\r\n", "\n") if text is not None else None
    html = html.replace("\r\n", "\n") if html is not None else None
    if text is not None and html is not None:
        root.set_content(text)
        root.add_alternative(html, subtype="html")
    elif html is not None:
        root.set_content(html, subtype="html")
    else:
        root.set_content(text or "")
    html_part = root.get_body(("html",)) if html is not None else None
    for f in files:
        maintype, _, subtype = f.content_type.partition("/")
        if maintype in ("multipart", "message") or not subtype:
            maintype, subtype = "application", "octet-stream"  # never a MIME structure
        options: dict[str, Any] = {"filename": f.filename, "disposition": f.disposition}
        if f.content_id:
            options["cid"] = f"<{f.content_id}>"
        if f.disposition == "inline" and html_part is not None:
            html_part.add_related(f.data, maintype, subtype, **options)
        else:
            root.add_attachment(f.data, maintype, subtype, **options)
    return root.as_bytes()


def build_email(doc: dict[str, Any], files: Sequence[Attachment] = ()) -> tuple[str, bytes]:
    """(Message-ID, the RFC 5322 message as bytes, LF line ends as in a Maildir; the SMTP
    backend turns them into CRLF).

    Assembled directly when there are no files: the `email` package's generator takes
    milliseconds per message, which would take the server's time from answering
    requests. Non-ASCII headers are RFC 2047 encoded, domains IDNA encoded, bodies
    quoted-printable UTF-8; a non-ASCII local part is written as UTF-8 (RFC 6532), which
    only an SMTPUTF8 transport may carry. Raises BackendError for an address that
    cannot be encoded. Tests parse the result with the `email` package.
    """
    message_id = make_msgid(domain=MSGID_DOMAIN)
    headers = []
    for field in HEADER_FIELDS:  # From, To, Subject, ... as fields.py declares them
        value = doc.get(field.name)
        if value is not None:
            encoded = _addresses(value) if field.mailbox else _header(value)
            headers.append(f"{field.header}: {encoded}")
    headers += [
        f"Date: {formatdate(usegmt=True)}",
        f"Message-ID: {message_id}",
        f"X-Outkit-Message-Id: {doc['id']}",
        "MIME-Version: 1.0",
    ]
    text, html = doc.get("text_body"), doc.get("html_body")
    head = ("\n".join(headers) + "\n").encode("utf-8")
    if files:
        return message_id, head + _mime_body(text, html, files)
    if text is not None and html is not None:
        # not uuid4: os.urandom is a system call, which gives up the GIL to the request
        # threads and waits to get it back; a boundary needs no secrecy (quoted-printable
        # parts never hold "=_", RFC 2045 section 6.7)
        boundary = f"=_outkit_{random.getrandbits(128):032x}"
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
        mailbox.Maildir(directory, create=True)  # tmp/, new/, cur/, as the format has them
        self._lock = threading.Lock()
        self._count = 0
        # the Maildir's directories as text: pathlib's joins cost more than the writes
        self._tmp = os.path.join(directory, "tmp", "")
        self._new = os.path.join(directory, "new", "")
        # the host part of a Maildir file name, with "/" and ":" escaped as mailbox does
        self._host = socket.gethostname().replace("/", r"\057").replace(":", r"\072")

    def deliver(
        self, doc: dict[str, Any], files: Sequence[Attachment] = ()
    ) -> tuple[str, dict[str, Any]]:
        """Write the message; the outbox takes UTF-8 addresses, as an SMTPUTF8 server."""
        try:
            if doc["type"] == "sms":
                return self._sms(doc)
            message_id, raw = build_email(doc, files)
            with self._lock:
                path = self._add(raw)
        except (OSError, ValueError) as exc:
            raise BackendError(f"outbox: {exc}") from None
        return message_id, {"backend": "outbox", "path": path}

    def _add(self, raw: bytes) -> str:
        """Write one message into the Maildir as its format asks: a file of a unique name
        in `tmp/`, then renamed into `new/`, so a reader never sees half a message.

        `mailbox.Maildir.add` does the same plus an fsync of every file, which cost the
        worker more CPU than the rest of a delivery (bench/bench_sandbox.py). The message's
        database row, written after it, is not synced either (SQLite WAL with
        synchronous=NORMAL): both survive a crash of the sandbox, not of the machine.
        Raises OSError.
        """
        self._count += 1
        now = time.time()
        name = f"{int(now)}.M{int(now % 1 * 1e6)}P{os.getpid()}Q{self._count}.{self._host}"
        tmp = self._tmp + name
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(raw)
            final = self._new + name
            try:
                os.link(tmp, final)  # as mailbox.Maildir.add: never replaces a file
            except PermissionError:  # a file system without hard links (as mailbox does)
                os.rename(tmp, final)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        return final

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

    def deliver(
        self, doc: dict[str, Any], files: Sequence[Attachment] = ()
    ) -> tuple[str, dict[str, Any]]:
        """Hand the message over: EHLO, MAIL FROM, RCPT TO each recipient, DATA. A
        non-ASCII local part needs the server's SMTPUTF8 (RFC 6531); every refusal is a
        BackendError that reads as the server's reply (`421 4.3.2 ...`)."""
        import smtplib

        where = f"smtp {self.host}:{self.port}"
        if doc["type"] != "email":
            raise BackendError(f"{where}: cannot deliver {doc['type']} messages")
        message_id, raw = build_email(doc, files)
        utf8_address = needs_smtputf8(doc)
        senders = mailboxes(doc["from"])
        sender = f"{senders[0][1]}@{senders[0][2]}" if senders else ""
        recipients = [f"{local}@{domain}" for _, local, domain in mailboxes(doc["to"])]
        step = "connect"
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                step = "EHLO"
                smtp.ehlo_or_helo_if_needed()
                options: list[str] = []
                if utf8_address is not None:
                    if not smtp.has_extn("smtputf8"):
                        raise BackendError(
                            f"{where}: the address {utf8_address} has a non-ASCII local part, "
                            "which needs SMTPUTF8 (RFC 6531), and this server does not offer it"
                        )
                    options.append("SMTPUTF8")
                    smtp.command_encoding = "utf-8"  # as smtplib's sendmail does for it
                step = "MAIL FROM"
                code, resp = smtp.mail(sender, options)
                if code != 250:
                    raise BackendError(f"{where}: MAIL FROM refused: {_reply(code, resp)}")
                for rcpt in recipients:
                    step = f"RCPT TO {rcpt}"
                    code, resp = smtp.rcpt(rcpt)
                    if code not in (250, 251):
                        raise BackendError(f"{where}: RCPT TO {rcpt} refused: {_reply(code, resp)}")
                step = "DATA"
                code, resp = smtp.data(raw.replace(b"\n", b"\r\n"))  # bytes are sent as they are
                if code != 250:
                    raise BackendError(f"{where}: DATA refused: {_reply(code, resp)}")
        except BackendError:
            raise
        except smtplib.SMTPResponseException as exc:  # str() of these is a Python tuple
            raise BackendError(
                f"{where}: {step} refused: {_reply(exc.smtp_code, exc.smtp_error)}"
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise BackendError(f"{where}: {step}: {reason or type(exc).__name__}") from None
        return message_id, {
            "backend": "smtp",
            "server": f"{self.host}:{self.port}",
            "code": code,
            "response": resp.decode("utf-8", "replace"),
        }


def _reply(code: int, text: bytes | str) -> str:
    """An SMTP reply as a sentence: `421 4.3.2 Service not available, closing`."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = " ".join(text.split())  # a multi-line reply on one line, no control characters
    return f"{code} {text}".strip()
