"""Attachments end to end, IDN addresses, SMTP replies, and emails that are always valid."""

from __future__ import annotations

import email
import email.policy
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from outkit_cli.sandbox.attachments import Attachment
from outkit_cli.sandbox.delivery import build_email
from tests.sandbox_fixture import Sandbox
from tests.test_official_clients import form_data_body, hmac_b64, send, v1
from tests.test_sandbox_api import post
from tests.test_sandbox_delivery import _free_port

Start = Callable[..., Sandbox]
BOUNDARY = "xYzBoundary0123456789"
EMAIL = {"type": "email", "project": "demo", "to": "ada@example.com", "subject": "Files",
         "text_body": "see attached",
         "html_body": '<p>logo: <img src="cid:logo.png"></p>'}  # fmt: skip


def post_files(
    sb: Sandbox,
    message: dict[str, Any],
    files: list[tuple[str, str, bytes]],
    disposition: str | None = None,
    *,
    sign: str = "message",
) -> tuple[int, dict[str, Any]]:
    text = json.dumps(message)
    fields = [("message", text.encode())]
    if disposition is not None:
        fields.append(("disposition", disposition.encode()))
    body = form_data_body(BOUNDARY, fields, files)
    ts = str(int(time.time()))
    path = v1(sb, "/messages")
    signed = {"message": text.encode(), "body": body, "none": b"nothing"}[sign]
    headers = [
        ("Content-Type", f"multipart/form-data; boundary={BOUNDARY}"),
        ("Outkit-Access-Key", sb.key),
        ("Outkit-Access-Passphrase", sb.passphrase),
        ("Outkit-Access-Timestamp", ts),
        ("Outkit-Access-Signature", hmac_b64(sb.secret, ts.encode() + b"POST" + path.encode()
                                             + signed)),
    ]  # fmt: skip
    status, _, raw = send(sb, "POST", path, headers, body)
    return status, json.loads(raw)


def parse(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


def defects(msg: email.message.EmailMessage) -> list[str]:
    """Every defect the `email` package finds, in the structure and in each header."""
    found = []
    for part in msg.walk():
        found += [f"{type(d).__name__} in part" for d in part.defects]
        for name, value in part.items():
            found += [f"{type(d).__name__} in {name}" for d in getattr(value, "defects", ())]
    return found


def eml(sb: Sandbox, msg: dict[str, Any]) -> email.message.EmailMessage:
    with open(msg["backend_response"]["path"], "rb") as fh:
        parsed = parse(fh.read())
    assert defects(parsed) == []
    return parsed


def test_attachment_and_inline_files_are_delivered_as_mime_parts(sandbox: Sandbox) -> None:
    status, doc = post_files(
        sandbox, {**EMAIL, "sync": True},
        [("report.pdf", "application/pdf", b"%PDF-1.4\n" + bytes(range(256))),
         ("Grüße zum Jahr 2026.txt", "text/plain", b"Frohes neues Jahr")],
    )  # fmt: skip
    assert status == 200, doc
    msg = doc["data"]
    assert msg["status"] == "delivered", msg["status_message"]
    assert [(a["filename"], a["size"], a["disposition"]) for a in msg["attachments"]] == [
        ("report.pdf", 265, "attachment"), ("Grüße zum Jahr 2026.txt", 17, "attachment")
    ]  # fmt: skip
    parsed = eml(sandbox, msg)
    assert parsed.get_content_type() == "multipart/mixed"
    files = list(parsed.iter_attachments())
    assert [f.get_filename() for f in files] == ["report.pdf", "Grüße zum Jahr 2026.txt"]
    assert files[0].get_content() == b"%PDF-1.4\n" + bytes(range(256))
    assert files[1].get_content().strip() == "Frohes neues Jahr"
    assert parsed.get_body(("plain",)).get_content().strip() == "see attached"  # type: ignore[union-attr]
    # stored with the message: GET returns the same list
    assert (
        sandbox.request("GET", f"/messages/{msg['id']}")[1]["data"]["attachments"]
        == (msg["attachments"])
    )


def test_inline_files_get_a_content_id_the_html_refers_to(sandbox: Sandbox) -> None:
    status, doc = post_files(
        sandbox, {**EMAIL, "sync": True}, [("logo.png", "image/png", b"\x89PNG fake")], "inline"
    )
    msg = doc["data"]
    assert status == 200 and msg["attachments"][0]["content_id"] == "logo.png"
    parsed = eml(sandbox, msg)
    html = parsed.get_body(("html",))
    assert html is not None and 'src="cid:logo.png"' in html.get_content()
    related = next(p for p in parsed.walk() if p.get_content_type() == "multipart/related")
    image = next(p for p in related.iter_parts() if p.get_content_type() == "image/png")
    assert image["Content-ID"] == "<logo.png>"
    assert image.get_content_disposition() == "inline" and image.get_filename() == "logo.png"


def test_signature_over_the_whole_body_is_accepted_and_a_wrong_one_refused(
    sandbox: Sandbox,
) -> None:
    files = [("a.txt", "text/plain", b"a")]
    status, doc = post_files(sandbox, {**EMAIL, "render_only": True}, files, sign="body")
    assert status == 200, doc
    status, doc = post_files(sandbox, {**EMAIL, "render_only": True}, files, sign="none")
    assert status == 401 and "bad signature" in doc["error"]["message"]


def test_limits_on_count_and_size_are_named(sandbox: Sandbox) -> None:
    from outkit_cli.sandbox.attachments import MAX_ATTACHMENT_BYTES, MAX_ATTACHMENTS

    many = [(f"f{n}.txt", "text/plain", b"x") for n in range(MAX_ATTACHMENTS + 1)]
    status, doc = post_files(sandbox, EMAIL, many)
    assert status == 422 and f"at most {MAX_ATTACHMENTS}" in doc["error"]["message"]
    big = [("big.bin", "application/octet-stream", b"x" * (MAX_ATTACHMENT_BYTES + 1))]
    status, doc = post_files(sandbox, EMAIL, big)
    assert status == 413 and "5 MiB" in doc["error"]["message"]
    assert doc["error"]["code"] == "payload_too_large"


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"--xYzBoundary0123456789\r\nContent-Disposition: form-data; name=\"message\"\r\n\r\n{}",
         "closing boundary"),
        (b"--xYzBoundary0123456789--\r\n", "no `message` part"),
        (b"garbage", "multipart"),
    ],
)  # fmt: skip
def test_malformed_multipart_is_a_422(sandbox: Sandbox, body: bytes, needle: str) -> None:
    ts = str(int(time.time()))
    path = v1(sandbox, "/messages")
    headers = [
        ("Content-Type", f"multipart/form-data; boundary={BOUNDARY}"),
        ("Outkit-Access-Key", sandbox.key),
        ("Outkit-Access-Passphrase", sandbox.passphrase),
        ("Outkit-Access-Timestamp", ts),
        ("Outkit-Access-Signature", hmac_b64(sandbox.secret, ts + "POST" + path) if False
         else hmac_b64(sandbox.secret, ts.encode() + b"POST" + path.encode() + body)),
    ]  # fmt: skip
    status, _, raw = send(sandbox, "POST", path, headers, body)
    assert status == 422 and needle in json.loads(raw)["error"]["message"], raw


def test_an_rfc_8187_filename_is_read_when_it_is_the_only_one(sandbox: Sandbox) -> None:
    # .NET's form.Add(content, name, fileName), Postman: filename*=UTF-8''<%-encoded>
    text = json.dumps({**EMAIL, "render_only": True}).encode()
    body = (
        f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=message\r\n\r\n".encode()
        + text
        + f'\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name="attachments[]"; '
        "filename*=UTF-8''%E6%96%B0%E5%BB%BA.txt\r\nContent-Type: text/plain\r\n\r\nx\r\n"
        f"--{BOUNDARY}--\r\n".encode()
    )
    ts = str(int(time.time()))
    path = v1(sandbox, "/messages")
    headers = [
        ("Content-Type", f"multipart/form-data; boundary={BOUNDARY}"),
        ("Outkit-Access-Key", sandbox.key),
        ("Outkit-Access-Passphrase", sandbox.passphrase),
        ("Outkit-Access-Timestamp", ts),
        ("Outkit-Access-Signature",
         hmac_b64(sandbox.secret, ts.encode() + b"POST" + path.encode() + text)),
    ]  # fmt: skip
    status, _, raw = send(sandbox, "POST", path, headers, body)
    assert status == 200, raw
    assert json.loads(raw)["data"]["attachments"][0]["filename"] == "新建.txt"


def test_sms_cannot_carry_attachments(sandbox: Sandbox) -> None:
    sms = {"type": "sms", "project": "demo", "to": "+4712345678", "text_body": "hi"}
    status, doc = post_files(sandbox, sms, [("a.txt", "text/plain", b"a")])
    assert status == 422 and "email" in doc["error"]["message"]


def test_disposition_other_than_attachment_or_inline_is_a_422(sandbox: Sandbox) -> None:
    status, doc = post_files(sandbox, EMAIL, [("a.txt", "text/plain", b"a")], "sideways")
    assert status == 422 and "disposition" in doc["error"]["message"]


# -- addresses ---------------------------------------------------------------------------------


def test_idn_domains_go_out_as_idna(sandbox: Sandbox) -> None:
    _, doc = post(sandbox, {**EMAIL, "to": "Jörg <joerg@bücher.example>, anna@münchen.example",
                            "sync": True})  # fmt: skip
    msg = doc["data"]
    assert msg["status"] == "delivered", msg["status_message"]
    parsed = eml(sandbox, msg)
    assert [a.addr_spec for a in parsed["To"].addresses] == [
        "joerg@xn--bcher-kva.example", "anna@xn--mnchen-3ya.example"
    ]  # fmt: skip
    assert parsed["To"].addresses[0].display_name == "Jörg"


def test_a_domain_idna_refuses_is_a_backend_error_in_words(sandbox: Sandbox) -> None:
    _, doc = post(sandbox, {**EMAIL, "to": "x@a\u200db.example", "sync": True})
    msg = doc["data"]
    assert msg["status"] == "backend_error"
    assert "not a valid internationalised domain name" in msg["status_message"]


class _Recorder:
    def __init__(self, mail_reply: str | None = None) -> None:
        self.envelopes: list[Any] = []
        self.mail_reply = mail_reply

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str,
                          options: list[str]) -> str:  # fmt: skip
        if self.mail_reply:
            return self.mail_reply
        envelope.mail_from, envelope.mail_options = address, options
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 OK queued"


@pytest.fixture
def smtp_factory() -> Iterator[Callable[..., tuple[str, _Recorder]]]:
    from aiosmtpd.controller import Controller

    started = []

    def start(*, smtputf8: bool, mail_reply: str | None = None) -> tuple[str, _Recorder]:
        recorder = _Recorder(mail_reply)
        port = _free_port()
        controller = Controller(recorder, hostname="127.0.0.1", port=port,
                                enable_SMTPUTF8=smtputf8)  # fmt: skip
        controller.start()
        started.append(controller)
        return f"127.0.0.1:{port}", recorder

    yield start
    for controller in started:
        controller.stop()


def test_smtp_envelope_uses_idna_and_smtputf8_when_offered(
    start_sandbox: Start, smtp_factory: Callable[..., tuple[str, _Recorder]]
) -> None:
    address, recorder = smtp_factory(smtputf8=True)
    sb = start_sandbox(smtp=address)
    _, doc = post(sb, {**EMAIL, "to": "Jörg <jörg@bücher.example>", "sync": True})
    msg = doc["data"]
    assert msg["status"] == "delivered", msg["status_message"]
    (envelope,) = recorder.envelopes
    # aiosmtpd keeps the raw UTF-8 bytes of the command as surrogate escapes
    rcpts = [r.encode("utf-8", "surrogateescape").decode("utf-8") for r in envelope.rcpt_tos]
    assert rcpts == ["jörg@xn--bcher-kva.example"]
    assert "SMTPUTF8" in envelope.mail_options
    text = envelope.original_content.decode("utf-8")  # RFC 6532: headers in UTF-8
    parsed = email.message_from_string(text, policy=email.policy.SMTPUTF8)
    assert parsed["To"].addresses[0].addr_spec == "jörg@xn--bcher-kva.example"


def test_non_ascii_local_part_without_smtputf8_is_a_backend_error_saying_so(
    start_sandbox: Start, smtp_factory: Callable[..., tuple[str, _Recorder]]
) -> None:
    address, recorder = smtp_factory(smtputf8=False)
    sb = start_sandbox(smtp=address)
    _, doc = post(sb, {**EMAIL, "to": "jörg@example.com", "sync": True})
    msg = doc["data"]
    assert msg["status"] == "backend_error" and recorder.envelopes == []
    assert "SMTPUTF8" in msg["status_message"] and "jörg@example.com" in msg["status_message"]
    # an IDN domain alone needs no SMTPUTF8
    _, doc = post(sb, {**EMAIL, "to": "joerg@bücher.example", "sync": True})
    assert doc["data"]["status"] == "delivered"
    assert recorder.envelopes[0].rcpt_tos == ["joerg@xn--bcher-kva.example"]


def test_smtp_refusal_reads_as_the_servers_reply(
    start_sandbox: Start, smtp_factory: Callable[..., tuple[str, _Recorder]]
) -> None:
    address, _ = smtp_factory(smtputf8=False, mail_reply="421 4.3.2 Service not available, closing")
    sb = start_sandbox(smtp=address)
    _, doc = post(sb, {**EMAIL, "sync": True})
    message = doc["data"]["status_message"]
    assert doc["data"]["status"] == "backend_error"
    assert message.endswith("421 4.3.2 Service not available, closing"), message
    assert "b'" not in message and "(" not in message


def test_smtp_delivers_attachments(
    start_sandbox: Start, smtp_factory: Callable[..., tuple[str, _Recorder]]
) -> None:
    address, recorder = smtp_factory(smtputf8=False)
    sb = start_sandbox(smtp=address)
    status, doc = post_files(sb, {**EMAIL, "sync": True}, [("Ørsted.csv", "text/csv", b"a,b\n")])
    assert status == 200 and doc["data"]["status"] == "delivered", doc
    parsed = parse(recorder.envelopes[0].original_content)
    assert defects(parsed) == []
    (file,) = parsed.iter_attachments()
    assert file.get_filename() == "Ørsted.csv" and file.get_content() == "a,b\n"
    assert recorder.envelopes[0].original_content.isascii()  # RFC 2231, nothing raw


# -- CSS ------------------------------------------------------------------------------------------


def test_rules_that_cannot_be_inlined_stay_in_a_style_block(sandbox: Sandbox) -> None:
    css = "p { color: red } a:hover { color: blue } @media (max-width: 600px) { p { margin: 0 } }"
    _, doc = post(sandbox, {**EMAIL, "html_body": None, "text_body": None,
                            "html_template_body": "<p>Hi <a href='#'>x</a></p>",
                            "template_styles": css, "render_only": True, "sync": True})  # fmt: skip
    html = doc["data"]["html_body"]
    assert '<p style="color: red;">' in html
    assert "<style>" in html and "a:hover" in html and "@media (max-width: 600px)" in html
    assert "p { color: red }" not in html.split("<style>", 1)[1]


# -- every outbox email parses without a defect ----------------------------------------------------

_text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40)
_line = _text.filter(lambda s: "\n" not in s and "\r" not in s and s.strip() != "")


def _mailbox(name: str, local: str, domain: str) -> str:
    from email.headerregistry import Address

    return str(Address(display_name=name, username=local, domain=domain))


@settings(max_examples=150, deadline=None)
@given(
    name=_line,
    subject=_line,
    text=_text,
    html=_text,
    filename=_line,
    inline=st.booleans(),
    domain=st.sampled_from(["example.com", "bücher.example", "xn--mnchen-3ya.example"]),
)
@example(name="", subject="", text="", html="", filename="<>", inline=False,
         domain="example.com")  # fmt: skip
def test_any_unicode_gives_an_email_without_defects(
    name: str, subject: str, text: str, html: str, filename: str, inline: bool, domain: str
) -> None:
    from outkit_cli.sandbox.attachments import _filename, content_id_for

    safe_name = _filename(filename.encode(), 1)  # as the sandbox stores a filename
    files = [
        Attachment(safe_name, "text/plain", "inline" if inline else "attachment", b"data",
                   content_id_for(safe_name) if inline else None)
    ]  # fmt: skip
    for attached in ([], files):
        doc = {"id": "m1", "from": _mailbox(name, "from", "example.com"),
               "to": _mailbox(name, "to", domain), "subject": subject, "text_body": text,
               "html_body": html}  # fmt: skip
        _, raw = build_email(doc, attached)
        parsed = parse(raw)
        assert defects(parsed) == [], raw[:2000]
        # control characters become spaces; folding may change runs of white space
        shown = "".join(c if c.isprintable() else " " for c in subject)
        assert " ".join(parsed["Subject"].split()) == " ".join(shown.split())
        if name.isprintable():
            shown = parsed["To"].addresses[0].display_name
            assert " ".join(shown.split()) == " ".join(name.split())
        if attached:
            # the parameter as RFC 2183 reads it: Message.get_filename() also strips
            # `<...>` (email.utils.unquote, meant for addresses), so "<>" came back as ""
            (part,) = (
                p for p in parsed.walk()
                if p.get_param("filename", header="content-disposition") is not None
            )  # fmt: skip
            assert part["Content-Disposition"].params["filename"] == safe_name


def test_thousands_of_tiny_parts_stop_being_read_at_the_limit() -> None:
    from outkit_cli.sandbox.attachments import MAX_ATTACHMENTS, parse_create

    part = b'--B\r\nContent-Disposition: form-data; name="attachments[]"; filename="a"\r\n\r\nx\r\n'
    body = (
        b'--B\r\nContent-Disposition: form-data; name="message"\r\n\r\n{"type":"email"}\r\n'
        + part * 50_000
        + b"--B--\r\n"
    )
    create = parse_create("multipart/form-data; boundary=B", body)
    assert create.message == b'{"type":"email"}'  # still there for the signature check
    assert create.error is not None and f"at most {MAX_ATTACHMENTS}" in create.error.message
    assert create.attachments == []
