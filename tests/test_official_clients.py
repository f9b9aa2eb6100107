"""The sandbox answers each official Outkit client as it really sends its requests.

The request builders below are written from what each client's source does (headers and
their casing, timestamp form, JSON encoder and its escapes, nulls, multipart layout, what
it signs), read from github.com/outkit/{javascript,php,elixir,csharp}-client. Each test
signs correctly (the C# client's own HMAC is keyed with the payload: a bug the sandbox
must refuse, and does), sends over loopback, and reads the answer the way the client does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.sandbox_fixture import Sandbox

MESSAGE = {
    "type": "email",
    "project": "demo",
    "to": "Søren Ørsted <soren@example.com>",
    "subject": "Hei / hallo <b>&</b>",
    "html_body": "<p>Hilsen fra Ørsted</p>",
    "text_body": "Hilsen fra Ørsted",
}


# -- the JSON encoders of each client ----------------------------------------------------


def js_stringify(value: Any) -> str:
    """JSON.stringify: compact, non-ASCII and `/` as they are."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def php_json_encode(value: Any) -> str:
    """PHP json_encode with default flags: \\u00f8 (lower-case hex), `\\/`, [] for an
    empty array (PHP has one type for lists and maps)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True).replace("/", "\\/")


def jason_encode(value: Any) -> str:
    """Elixir Jason.encode!: compact, UTF-8 as it is; small maps come out key-sorted."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


_DOTNET_ESCAPED = set("<>&'+\"`\\")


def dotnet_serialize(value: Any) -> str:
    """System.Text.Json with the default encoder: \\u00F8 (upper-case hex) for non-ASCII,
    and HTML-sensitive characters escaped too (`<` as \\u003C, `"` as \\u0022)."""

    def enc(s: str) -> str:
        out = []
        for ch in s:
            if ch == "\n":
                out.append("\\n")
            elif ch in _DOTNET_ESCAPED or ord(ch) < 0x20 or ord(ch) > 0x7E:
                out.extend(f"\\u{u:04X}" for u in _utf16(ch))
            else:
                out.append(ch)
        return '"' + "".join(out) + '"'

    if isinstance(value, dict):
        return "{" + ",".join(f"{enc(k)}:{dotnet_serialize(v)}" for k, v in value.items()) + "}"
    if isinstance(value, str):
        return enc(value)
    return json.dumps(value)


def _utf16(ch: str) -> Iterable[int]:
    data = ch.encode("utf-16-be")
    return (int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2))


# -- signing and sending ---------------------------------------------------------------------


def hmac_b64(key: str, payload: str | bytes) -> str:
    raw = payload.encode() if isinstance(payload, str) else payload
    return base64.b64encode(hmac.new(key.encode(), raw, hashlib.sha256).digest()).decode()


def client_headers(
    sb: Sandbox,
    ts: str,
    signature: str,
    own: Iterable[tuple[str, str]] = (),
    *,
    lower_case: bool = False,
) -> list[tuple[str, str]]:
    """A client's request headers: its `own` ones in its order, then the four
    Outkit-Access-* headers, which every official client adds last and in this order
    (key, signature, timestamp, passphrase); `lower_case` names them as axios does."""
    access = [
        ("Outkit-Access-Key", sb.key),
        ("Outkit-Access-Signature", signature),
        ("Outkit-Access-Timestamp", ts),
        ("Outkit-Access-Passphrase", sb.passphrase),
    ]
    if lower_case:
        access = [(name.lower(), value) for name, value in access]
    return [*own, *access]


def signature(secret: str, ts: str, method: str, path: str, body: str = "") -> str:
    """The pre-signature every client signs: timestamp + method + path + body."""
    return hmac_b64(secret, ts + method + path + body)


def send(
    sb: Sandbox,
    method: str,
    path: str,
    headers: list[tuple[str, str]],
    body: bytes | Iterable[bytes] | None = None,
    *,
    chunked: bool = False,
) -> tuple[int, dict[str, str], bytes]:
    """Headers exactly as listed (name casing kept); `chunked` streams the body as Node
    does for a form-data stream."""
    base = urlsplit(sb.url)
    conn = http.client.HTTPConnection(base.hostname, base.port, timeout=30)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for name, value in headers:
            conn.putheader(name, value)
        if chunked:
            conn.putheader("Transfer-Encoding", "chunked")
        elif body is not None:
            assert isinstance(body, bytes)
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders()
        if body is not None:
            chunks = [body] if isinstance(body, bytes) else list(body)
            for chunk in chunks:
                conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
            if chunked:
                conn.send(b"0\r\n\r\n")
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def v1(sb: Sandbox, rest: str) -> str:
    return urlsplit(sb.url).path + rest


def js_timestamp() -> str:
    """Date.now() / 1000 as JavaScript prints it: 1496837645.123 (fewer digits when the
    milliseconds end in zeros)."""
    return repr(int(time.time() * 1000) / 1000)


def data_of(status: int, raw: bytes) -> dict[str, Any]:
    assert status == 200, raw[:500]
    doc = json.loads(raw)
    assert set(doc) == {"data"}
    return doc["data"]


def _iso(value: str | None) -> None:
    # what C#'s TryGetDateTime and Elixir's DateTime.from_iso8601 accept
    if value is not None:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", value), value
        datetime.fromisoformat(value.replace("Z", "+00:00"))


def parses_as_client_expects(msg: dict[str, Any]) -> None:
    """What the C# OutkitResponse and the Elixir struct read: string fields are strings
    or null (GetString() throws on anything else), dates ISO 8601, public_id = id."""
    assert msg["public_id"] == msg["id"]
    for name in ("id", "to", "from", "backend", "backend_id", "subject", "status",
                 "project", "project_id", "provider_id", "id_from_backend", "status_message",
                 "text_body", "html_body", "template", "template_id"):  # fmt: skip
        assert msg[name] is None or isinstance(msg[name], str), name
    for name in ("received_at", "rendered_at", "delivered_at", "failed_at",
                 "queued_for_rendering_at", "queued_for_delivery_at"):  # fmt: skip
        _iso(msg[name])
    assert isinstance(msg["done"], bool) and isinstance(msg["backend_response"], dict)


# -- JavaScript, request-based (0.0.x before 2020) ------------------------------------------


def test_javascript_request_client_with_fractional_timestamp(sandbox: Sandbox) -> None:
    body = js_stringify({"message": {**MESSAGE, "sync": True}})
    ts = js_timestamp()
    path = v1(sandbox, "/messages")
    own = [("User-Agent", "outkit-javascript-client"), ("Accept", "application/json"),
           ("Content-Type", "application/json")]  # fmt: skip
    headers = client_headers(sandbox, ts, signature(sandbox.secret, ts, "POST", path, body), own)
    status, _, raw = send(sandbox, "POST", path, headers, body.encode())
    msg = data_of(status, raw)
    assert msg["status"] == "delivered" and msg["to"] == MESSAGE["to"]
    # the client's getMessage: GET signs the path and an empty body
    ts = js_timestamp()
    get_path = v1(sandbox, f"/messages/{msg['id']}")
    headers = client_headers(sandbox, ts, signature(sandbox.secret, ts, "GET", get_path), own)
    status, _, raw = send(sandbox, "GET", get_path, headers)
    got = data_of(status, raw)
    assert got["id"] == msg["id"]
    parses_as_client_expects(got)


# -- JavaScript, axios-based (0.0.3, 2020) ----------------------------------------------------


def _axios_headers(
    sb: Sandbox, signature: str, ts: str, content_type: str
) -> list[tuple[str, str]]:
    # _addHeaders: form-data's own content-type, then user-agent and accept, then the four
    # outkit-access-* headers, every name in lower case
    own = [("content-type", content_type), ("user-agent", "outkit-javascript-client"),
           ("accept", "application/json")]  # fmt: skip
    return client_headers(sb, ts, signature, own, lower_case=True)


def form_data_body(
    boundary: str, fields: list[tuple[str, bytes]], files: list[tuple[str, str, bytes]]
) -> bytes:
    """The npm form-data package's layout: `--boundary`, Content-Disposition (with the
    file's basename, UTF-8 in quotes), Content-Type for files, CRLF everywhere."""
    out = b""
    for name, value in fields:
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        out += value + b"\r\n"
    for filename, ctype, data in files:
        out += (
            f"--{boundary}\r\nContent-Disposition: form-data; "
            f'name="attachments[]"; filename="{filename}"\r\nContent-Type: {ctype}\r\n\r\n'
        ).encode()
        out += data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def test_javascript_axios_client_multipart_with_lower_case_headers(sandbox: Sandbox) -> None:
    message = {**MESSAGE, "sync": True, "disposition": "attachment",
               "attachments": ["/home/me/report.pdf", "/home/me/Grüße.txt"]}  # fmt: skip
    # rawMessage = JSON.stringify(message) is taken before attachments and disposition
    # are deleted from it: the message part carries them, and is what gets signed
    raw_message = js_stringify(message)
    boundary = "-" * 26 + "".join(str(n % 10) for n in range(24))
    body = form_data_body(
        boundary,
        [("disposition", b"attachment"), ("message", raw_message.encode())],
        [("report.pdf", "application/pdf", b"%PDF-1.4 fake"), ("Grüße.txt", "text/plain", b"hei")],
    )
    ts = js_timestamp()
    path = v1(sandbox, "/messages")
    headers = _axios_headers(
        sandbox,
        hmac_b64(sandbox.secret, ts + "POST" + path + raw_message),
        ts,
        f"multipart/form-data; boundary={boundary}",
    )
    # Node streams the form (fs.createReadStream): no Content-Length, chunked
    chunks = [body[i : i + 100] for i in range(0, len(body), 100)]
    status, _, raw = send(sandbox, "POST", path, headers, chunks, chunked=True)
    msg = data_of(status, raw)
    assert msg["status"] == "delivered"
    assert msg["attachments"] == [
        {"filename": "report.pdf", "content_type": "application/pdf", "size": 13,
         "disposition": "attachment", "content_id": None},
        {"filename": "Grüße.txt", "content_type": "text/plain", "size": 3,
         "disposition": "attachment", "content_id": None},
    ]  # fmt: skip
    parses_as_client_expects(msg)
    # formatResponse reads body.data, or body.error on a failure
    bad = _axios_headers(sandbox, hmac_b64("wrong", ts + "POST" + path + raw_message), ts,
                         f"multipart/form-data; boundary={boundary}")  # fmt: skip
    status, _, raw = send(sandbox, "POST", path, bad, body)
    assert status == 401 and json.loads(raw)["error"]["code"] == "unauthorized"


def test_javascript_axios_json_create_is_refused_as_its_signature_is_wrong(
    sandbox: Sandbox,
) -> None:
    # without attachments the axios client still signs JSON.stringify(message) but sends
    # {"message": ...}: the signature does not cover the body, and the reference is the
    # authority (the hosted service refuses it too)
    message = {**MESSAGE, "render_only": True}
    ts = js_timestamp()
    path = v1(sandbox, "/messages")
    headers = _axios_headers(
        sandbox, hmac_b64(sandbox.secret, ts + "POST" + path + js_stringify(message)), ts,
        "application/json",
    )  # fmt: skip
    status, _, raw = send(
        sandbox, "POST", path, headers, js_stringify({"message": message}).encode()
    )
    assert status == 401 and "bad signature" in json.loads(raw)["error"]["message"]


# -- PHP (httpful) ---------------------------------------------------------------------------


def _php_headers(sb: Sandbox, ts: str, signature: str) -> list[tuple[str, str]]:
    # sendsJson() sets the content type first
    own = [("Content-Type", "application/json"), ("User-Agent", "outkit-php-client")]
    return client_headers(sb, ts, signature, own)


def test_php_client_escapes_and_empty_data_array(sandbox: Sandbox) -> None:
    message = {**MESSAGE, "html_body": "<p>Hilsen fra Ørsted</p>", "data": [], "sync": True}
    body = php_json_encode({"message": message})
    assert "\\u00f8" in body and "<\\/p>" in body and '"data":[]' in body
    ts = str(int(time.time()))
    path = v1(sandbox, "/messages")
    headers = _php_headers(sandbox, ts, hmac_b64(sandbox.secret, ts + "POST" + path + body))
    status, _, raw = send(sandbox, "POST", path, headers, body.encode())
    msg = data_of(status, raw)
    assert msg["html_body"] == "<p>Hilsen fra Ørsted</p>" and msg["data"] == {}
    assert msg["status"] == "delivered"
    parses_as_client_expects(msg)
    # an error reads as $resp->body->error->code and ->message
    nope = v1(sandbox, "/messages/nope")
    headers = _php_headers(sandbox, ts, hmac_b64(sandbox.secret, ts + "GET" + nope))
    status, _, raw = send(sandbox, "GET", nope, headers)
    assert status == 404 and set(json.loads(raw)["error"]) == {"code", "message"}


# -- Elixir (HTTPoison + Jason) ---------------------------------------------------------------

ELIXIR_SETTABLE = ("type", "template", "project", "backend", "subject", "text_body",
                   "html_body", "id_from_submitter", "to", "from", "data", "render_only",
                   "sync", "no_send", "test")  # fmt: skip


def test_elixir_client_every_field_with_null_and_no_send(sandbox: Sandbox) -> None:
    message = dict.fromkeys(ELIXIR_SETTABLE)
    message.update({"type": "email", "project": "demo", "template": "welcome",
                    "to": "ada@example.com", "data": {"name": "Ada"}, "no_send": True})  # fmt: skip
    body = jason_encode({"message": message})
    ts = str(int(time.time()))
    path = v1(sandbox, "/messages")  # endpoint "https://.../v1/" <> "messages"
    own = [("Content-Type", "application/json"), ("Accept", "application/json"),
           ("User-Agent", "outkit-elixir-client")]  # fmt: skip
    headers = client_headers(sandbox, ts, signature(sandbox.secret, ts, "POST", path, body), own)
    status, _, raw = send(sandbox, "POST", path, headers, body.encode())
    msg = data_of(status, raw)
    # Outkit.Message.new(body["data"]): the struct has public_id and no id
    assert msg["public_id"] == msg["id"]
    done = sandbox.wait_done(msg["id"])
    # no_send: rendered, never delivered (as render_only)
    assert done["status"] == "rendered" and done["render_only"] is True
    assert done["delivered_at"] is None and done["html_body"]
    assert not any(
        done["id"] in p.read_text("utf-8", "replace") for p in (sandbox.outbox() / "new").glob("*")
    )
    parses_as_client_expects(done)


# -- C# (HttpClient + System.Text.Json) --------------------------------------------------------

CSHARP_FIELDS = ("type", "to", "text_template_body", "text_body", "test", "template_styles",
                 "template_id", "template", "sync", "subject", "render_only", "project_id",
                 "project", "id_from_submitter", "html_template_body", "html_body", "from",
                 "backend_id", "backend")  # fmt: skip


def csharp_message(**fields: Any) -> dict[str, Any]:
    """Message serialised with every property in declaration order, strings null,
    booleans false, `data` left out when unset."""
    msg: dict[str, Any] = dict.fromkeys(CSHARP_FIELDS)
    msg.update({"test": False, "sync": False, "render_only": False})
    msg.update(fields)
    return msg


def _csharp_headers(sb: Sandbox, ts: str, signature: str) -> list[tuple[str, str]]:
    own = [("Accept", "application/json"), ("User-Agent", "outkit-c#-client")]
    return client_headers(sb, ts, signature, own)


def test_csharp_client_json_create_with_escapes_and_nulls(sandbox: Sandbox) -> None:
    json_text = '{"message":' + dotnet_serialize(csharp_message(**MESSAGE, sync=True)) + "}"
    assert "\\u003C" in json_text and "\\u00D8" in json_text and '"template":null' in json_text
    ts = str(int(time.time()))
    path = v1(sandbox, "/messages")
    headers = [*_csharp_headers(sandbox, ts, hmac_b64(sandbox.secret, ts + "POST" + path +
                                                       json_text)),
               ("Content-Type", "Application/Json; charset=utf-8")]  # fmt: skip
    status, _, raw = send(sandbox, "POST", path, headers, json_text.encode())
    msg = data_of(status, raw)
    assert msg["subject"] == MESSAGE["subject"] and msg["status"] == "delivered"
    parses_as_client_expects(msg)
    # GetAllMessages: GET /v1/messages, data is an array of message objects
    headers = _csharp_headers(sandbox, ts, hmac_b64(sandbox.secret, ts + "GET" + path))
    status, _, raw = send(sandbox, "GET", path, headers)
    listed = data_of(status, raw)
    assert isinstance(listed, list) and msg["id"] in [m["public_id"] for m in listed]
    # the client as published keys its HMAC with the payload, not the secret: refused
    payload = ts + "POST" + path + json_text
    headers = [*_csharp_headers(sandbox, ts, hmac_b64(payload, payload)),
               ("Content-Type", "Application/Json; charset=utf-8")]  # fmt: skip
    status, _, raw = send(sandbox, "POST", path, headers, json_text.encode())
    assert status == 401


def dotnet_multipart(boundary: str, message_json: str, disposition: str,
                     files: list[tuple[str, str, bytes]]) -> bytes:  # fmt: skip
    """MultipartFormDataContent as .NET writes it: StringContent parts (text/plain;
    charset=utf-8) with unquoted names, quoted `attachments[]`, a filename that is a token
    unquoted, and a non-ASCII filename as a quoted RFC 2047 encoded-word."""

    def fname(name: str) -> str:
        if not name.isascii():
            return '"=?utf-8?B?' + base64.b64encode(name.encode()).decode() + '?="'
        return name if re.fullmatch(r"[A-Za-z0-9.!#$%&'*+^_`|~-]+", name) else f'"{name}"'

    parts = [
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Disposition: form-data; "
        b"name=message\r\n\r\n" + message_json.encode(),
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Disposition: form-data; "
        b"name=disposition\r\n\r\n" + disposition.encode(),
    ]
    for name, ctype, data in files:
        parts.append(
            f'Content-Disposition: form-data; name="attachments[]"; filename={fname(name)}'
            f"\r\nContent-Type: {ctype}\r\n\r\n".encode()
            + data
        )
    out = b"".join(f"--{boundary}\r\n".encode() + p + b"\r\n" for p in parts)
    return out + f"--{boundary}--\r\n".encode()


def test_csharp_client_multipart_inline_with_encoded_word_filename(sandbox: Sandbox) -> None:
    message_json = dotnet_serialize(
        csharp_message(**{**MESSAGE, "html_body": '<p><img src="cid:logo.png"></p>'}, sync=True)
    )
    boundary = f"----------{uuid.uuid4().hex}"
    body = dotnet_multipart(boundary, message_json, "Inline", [
        ("logo.png", "image/png", b"\x89PNG\r\n\x1a\nfake"),
        ("Åpningstider.txt", "text/plain", "Åpent 9–17".encode()),
    ])  # fmt: skip
    ts = str(int(time.time()))
    path = v1(sandbox, "/messages")
    # what CreateMessage signs: {"message":<json>}, the same json the message part holds
    signed = '{"message":' + message_json + "}"
    headers = [
        *_csharp_headers(sandbox, ts, hmac_b64(sandbox.secret, ts + "POST" + path + signed)),
        ("Content-Type", f"multipart/form-data;boundary={boundary}"),
    ]
    status, _, raw = send(sandbox, "POST", path, headers, body)
    msg = data_of(status, raw)
    assert [(a["filename"], a["disposition"], a["content_id"]) for a in msg["attachments"]] == [
        ("logo.png", "inline", "logo.png"),
        ("Åpningstider.txt", "inline", "%C3%85pningstider.txt"),
    ]
    assert msg["status"] == "delivered", msg["status_message"]
    parses_as_client_expects(msg)


# -- curl and openssl by hand, as the reference describes ---------------------------------------

needs_curl = pytest.mark.skipif(
    not (shutil.which("curl") and shutil.which("openssl") and shutil.which("bash")),
    reason="curl, openssl and bash are needed to run the reference's recipe",
)

RECIPE = r"""
set -eu
ts=$(date +%s)
body='{"message":{"type":"email","project":"demo","to":"ada@example.com",'\
'"text_body":"hi from curl","render_only":true}}'
path=/v1/messages
sig=$(printf '%s' "$ts""POST""$path""$body" \
  | openssl dgst -sha256 -hmac "$SECRET" -binary | openssl base64 -A)
curl -sS -X POST "$BASE$path" \
  -H "Outkit-Access-Key: $KEY" -H "Outkit-Access-Passphrase: $PASSPHRASE" \
  -H "Outkit-Access-Timestamp: $ts" -H "Outkit-Access-Signature: $sig" \
  -H 'Content-Type: application/json' --data-binary "$body"
"""

UNSIGNED = r"""
set -eu
curl -sS "$BASE/v1/messages?page=2" -H "Outkit-Access-Key: $KEY" \
  -H "Outkit-Access-Passphrase: $PASSPHRASE" -H "Outkit-Access-Secret: $SECRET"
"""


@needs_curl
def test_curl_and_openssl_signed_and_unsigned(sandbox: Sandbox) -> None:
    base = sandbox.url.rsplit("/v1", 1)[0]
    env = {"PATH": "/usr/bin:/bin", "BASE": base, "KEY": sandbox.key,
           "PASSPHRASE": sandbox.passphrase, "SECRET": sandbox.secret}  # fmt: skip
    out = subprocess.run(["bash", "-c", RECIPE], env=env, capture_output=True, timeout=60)
    msg = json.loads(out.stdout)["data"]
    assert msg["text_body"] == "hi from curl" and msg["public_id"] == msg["id"]
    env.update(KEY=sandbox.unsigned_key, PASSPHRASE=sandbox.unsigned_passphrase,
               SECRET=sandbox.unsigned_secret)  # fmt: skip
    out = subprocess.run(["bash", "-c", UNSIGNED], env=env, capture_output=True, timeout=60)
    listed = json.loads(out.stdout)["data"]
    assert msg["id"] in [m["id"] for m in listed]
