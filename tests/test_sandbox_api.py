"""The sandbox's HTTP API, over loopback against a real `outkit serve` process."""

from __future__ import annotations

import http.client
import json
import time
from typing import Any
from urllib.parse import urlsplit

import pytest

from outkit_cli import signing
from tests.sandbox_fixture import Sandbox

WELCOME = {"type": "email", "to": "ada@example.com", "project": "demo", "template": "welcome"}


def call(
    sb: Sandbox,
    method: str,
    path: str,
    body: bytes | dict[str, Any] | None = None,
    *,
    auth: str = "signed",
    headers: dict[str, str] | None = None,
    timestamp: str | None = None,
) -> tuple[int, dict[str, str], Any]:
    """One request on its own connection; returns (status, headers, parsed JSON body)."""
    raw = json.dumps(body).encode() if isinstance(body, dict) else (body or b"")
    base = urlsplit(sb.url)
    target = base.path + path
    hdrs: dict[str, str] = {}
    if auth == "signed":
        hdrs = signing.auth_headers(
            key=sb.key, passphrase=sb.passphrase, secret=sb.secret, method=method,
            path=target, body=raw, timestamp=timestamp,
        )  # fmt: skip
    elif auth == "unsigned":
        hdrs = signing.auth_headers(
            key=sb.unsigned_key, passphrase=sb.unsigned_passphrase, secret=sb.unsigned_secret,
            method=method, path=target, body=raw, signed=False,
        )  # fmt: skip
    hdrs.update(headers or {})
    conn = http.client.HTTPConnection(base.hostname, base.port, timeout=30)
    try:
        conn.request(method, target, body=raw or None, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        assert resp.getheader("Content-Type") == "application/json"
        return resp.status, dict(resp.getheaders()), json.loads(data) if data else None
    finally:
        conn.close()


def post(sb: Sandbox, message: dict[str, Any], **kw: Any) -> tuple[int, Any]:
    status, _, doc = call(sb, "POST", "/messages", {"message": message}, **kw)
    return status, doc


def error(doc: Any) -> tuple[str, str]:
    assert set(doc) == {"error"} and set(doc["error"]) == {"message", "code"}, doc
    return doc["error"]["code"], doc["error"]["message"]


# -- messages and the lifecycle -----------------------------------------------------------


def test_create_returns_every_field_then_delivers_with_timestamps(sandbox: Sandbox) -> None:
    status, doc = post(sandbox, {**WELCOME, "data": {"name": "Ada"}, "id_from_submitter": "r1"})
    assert status == 200
    msg = doc["data"]
    from outkit_cli.sandbox.app import EXTRA_FIELDS, MESSAGE_FIELDS

    assert set(msg) == set(MESSAGE_FIELDS) | set(EXTRA_FIELDS)
    assert msg["public_id"] == msg["id"] and msg["attachments"] == []
    assert msg["backend_response"] == {}  # as in the reference's example, not null
    assert msg["status"] == "received" and msg["done"] is False
    assert msg["project"] == "demo" and msg["template"] == "welcome"
    assert msg["from"] == "The Outkit Team <welcome@outkit.invalid>"  # template default
    assert msg["project_id"] and msg["template_id"] and msg["backend"] == "outbox"
    done = sandbox.wait_done(msg["id"])
    assert done["status"] == "delivered"
    assert done["subject"] == "Welcome to Outkit Sandbox, Ada!"
    assert "Hello Ada!" in done["text_body"] and "Hello Ada!" in done["html_body"]
    assert 'style="' in done["html_body"]  # the template's CSS was inlined
    stamps = [
        "received_at", "queued_for_rendering_at", "rendered_at", "queued_for_delivery_at",
        "delivered_at",
    ]  # fmt: skip
    values = [done[s] for s in stamps]
    assert all(v and v.endswith("Z") and len(v) == len("2018-04-21T09:02:24.607840Z")
               for v in values), values  # fmt: skip
    assert values == sorted(values)
    assert done["failed_at"] is None and done["status_message"] is None
    assert done["id_from_backend"].startswith("<") and done["backend_response"]["path"]
    assert done["id_from_submitter"] == "r1"


def test_get_by_id_and_unknown_id(sandbox: Sandbox) -> None:
    _, doc = post(sandbox, {**WELCOME, "sync": True})
    status, _, got = call(sandbox, "GET", f"/messages/{doc['data']['id']}")
    assert status == 200 and got["data"] == doc["data"]
    status, _, got = call(sandbox, "GET", "/messages/nope-123")
    assert status == 404 and error(got) == ("not_found", "no message with id nope-123")


def test_missing_name_uses_the_if_guarded_fallback(sandbox: Sandbox) -> None:
    _, doc = post(sandbox, {**WELCOME, "sync": True})
    msg = doc["data"]
    assert msg["status"] == "delivered" and msg["done"] is True
    assert msg["subject"] == "Welcome to Outkit Sandbox!"
    assert "Hello there!" in msg["text_body"]


def test_sms_template_is_delivered_as_a_json_line(sandbox: Sandbox) -> None:
    _, doc = post(
        sandbox,
        {"type": "sms", "to": "+4712345678", "project": "demo", "template": "reminder",
         "data": {"name": "Bo & Co", "when": "at 10:00"}, "sync": True},
    )  # fmt: skip
    msg = doc["data"]
    assert msg["status"] == "delivered", msg
    assert msg["text_body"].startswith("Hi Bo & Co, a reminder")  # no HTML escaping in text
    assert msg["subject"] is None and msg["html_body"] is None and msg["from"] == "OUTKIT"
    lines = (sandbox.outbox() / "sms.jsonl").read_text().splitlines()
    entry = next(json.loads(x) for x in lines if json.loads(x)["message_id"] == msg["id"])
    assert entry["to"] == "+4712345678" and entry["text"] == msg["text_body"]
    assert msg["id_from_backend"] == entry["id"]


def test_locals_are_layered_message_over_template_over_project(sandbox: Sandbox) -> None:
    _, doc = post(
        sandbox,
        {"type": "sms", "to": "+1", "project": "demo", "template": "reminder", "sync": True,
         "data": {"product": "Mine"}},
    )  # fmt: skip
    # product: project "Outkit Sandbox" overridden by the message; when: template default
    assert doc["data"]["text_body"] == (
        "Hi there, a reminder from Mine: your appointment is tomorrow.\n"
    )


def test_inline_templates_styles_and_html_escaping(sandbox: Sandbox) -> None:
    _, doc = post(
        sandbox,
        {"type": "email", "to": "Jane Doe <jane@example.com>", "project": "demo",
         "subject": "Hi {{name}}",
         "html_template_body": "<p>{{name}} {{#each xs}}[{{this}}]{{/each}}</p>",
         "text_template_body":
             "{{#unless vip}}not vip{{/unless}} {{#with a}}{{b}}{{/with}} {{name}}",
         "template_styles": "p { color: red; }",
         "data": {"name": "<Tom & Jerry>", "xs": [1, 2], "a": {"b": "B"}}, "sync": True},
    )  # fmt: skip
    msg = doc["data"]
    assert msg["status"] == "delivered", msg
    assert msg["subject"] == "Hi <Tom & Jerry>"
    assert '<p style="color: red;">&lt;Tom &amp; Jerry&gt; [1][2]</p>' in msg["html_body"]
    assert msg["text_body"] == "not vip B <Tom & Jerry>"
    assert msg["from"] == "Outkit Sandbox <sandbox@outkit.invalid>"  # project default


def test_given_bodies_skip_rendering(sandbox: Sandbox) -> None:
    _, doc = post(
        sandbox,
        {"type": "email", "to": "a@example.com", "project": "demo", "subject": "S {{x}}",
         "html_body": "<b>{{not rendered}}</b>", "text_body": "plain", "sync": True},
    )  # fmt: skip
    msg = doc["data"]
    assert msg["status"] == "delivered"
    assert msg["html_body"] == "<b>{{not rendered}}</b>" and msg["subject"] == "S {{x}}"
    assert msg["queued_for_rendering_at"] is None and msg["rendered_at"] is None
    assert msg["queued_for_delivery_at"] and msg["delivered_at"]


def test_render_only_stops_at_rendered(sandbox: Sandbox) -> None:
    _, doc = post(sandbox, {**WELCOME, "render_only": True, "data": {"name": "R"}})
    msg = sandbox.wait_done(doc["data"]["id"])
    assert msg["status"] == "rendered" and msg["done"] is True
    assert msg["subject"] == "Welcome to Outkit Sandbox, R!"
    assert msg["queued_for_delivery_at"] is None and msg["delivered_at"] is None
    assert msg["id_from_backend"] is None


def test_test_messages_run_the_lifecycle_but_reach_no_backend(sandbox: Sandbox) -> None:
    _, doc = post(sandbox, {**WELCOME, "test": True, "sync": True})
    msg = doc["data"]
    assert msg["status"] == "delivered" and msg["test"] is True
    assert msg["backend_response"]["test"] is True and msg["id_from_backend"] is None
    # other messages may be landing in the outbox meanwhile: look for this one's id
    marker = f"X-Outkit-Message-Id: {msg['id']}".encode()
    assert not [p for p in (sandbox.outbox() / "new").iterdir() if marker in p.read_bytes()]


def test_async_message_is_processed_by_the_worker(sandbox: Sandbox) -> None:
    _, doc = post(sandbox, {**WELCOME, "data": {"name": "W"}})
    assert doc["data"]["status"] == "received" and doc["data"]["done"] is False
    msg = sandbox.wait_done(doc["data"]["id"])
    assert msg["status"] == "delivered"


@pytest.mark.parametrize(
    "html",
    ["{{#if x}}unclosed", "{{#each xs}}a{{/if}}", "a {{name", "{{/if}}", "x {{#if}}y{{/if}}"],
)
def test_template_errors_are_accepted_and_end_in_render_error(sandbox: Sandbox, html: str) -> None:
    status, doc = post(
        sandbox,
        {"type": "email", "to": "a@example.com", "project": "demo",
         "html_template_body": html, "data": {"x": True, "xs": [1]}},
    )  # fmt: skip
    assert status == 200
    msg = sandbox.wait_done(doc["data"]["id"])
    assert msg["status"] == "render_error" and msg["done"] is True
    assert msg["status_message"].startswith("html_template_body")
    assert msg["failed_at"] and msg["delivered_at"] is None


def test_unclosed_block_message_names_the_block(sandbox: Sandbox) -> None:
    _, doc = post(
        sandbox,
        {"type": "email", "to": "a@example.com", "project": "demo", "sync": True,
         "html_template_body": "<p>\n{{#if x}}unclosed"},
    )  # fmt: skip
    assert doc["data"]["status_message"] == (
        "html_template_body: '{{#if x}}' at line 2 is never closed (add '{{/if}}')"
    )


# -- listing ------------------------------------------------------------------------------


def test_list_newest_first_with_filters(sandbox: Sandbox) -> None:
    tag = f"list-{time.time_ns()}"
    ids = [post(sandbox, {**WELCOME, "id_from_submitter": tag, "sync": True})[1]["data"]["id"]
           for _ in range(3)]  # fmt: skip
    bad = post(sandbox, {**WELCOME, "id_from_submitter": tag, "html_template_body": "{{#if",
                         "sync": True})[1]["data"]["id"]  # fmt: skip
    status, _, doc = call(sandbox, "GET", f"/messages?id_from_submitter={tag}")
    assert status == 200 and [m["id"] for m in doc["data"]] == [bad, *reversed(ids)]
    _, _, doc = call(sandbox, "GET", f"/messages?id_from_submitter={tag}&limit=2")
    assert [m["id"] for m in doc["data"]] == [bad, ids[2]]
    _, _, doc = call(sandbox, "GET", f"/messages?id_from_submitter={tag}&status=render_error")
    assert [m["id"] for m in doc["data"]] == [bad]
    _, _, doc = call(sandbox, "GET", "/messages?limit=1")
    assert len(doc["data"]) == 1
    assert any(m["id"] == ids[0] for m in sandbox.messages())


def test_list_by_several_ids_from_submitter(sandbox: Sandbox) -> None:
    tag = f"many-{time.time_ns()}"
    ids = {}
    for n in range(3):
        ifs = f"{tag}-{n}"
        ids[ifs] = post(sandbox, {**WELCOME, "id_from_submitter": ifs})[1]["data"]["id"]
    query = "&".join(f"id_from_submitter={tag}-{n}" for n in (0, 2, 9))
    status, _, doc = call(sandbox, "GET", f"/messages?{query}")
    assert status == 200
    assert {m["id_from_submitter"]: m["id"] for m in doc["data"]} == {
        f"{tag}-0": ids[f"{tag}-0"], f"{tag}-2": ids[f"{tag}-2"]}  # fmt: skip
    too_many = "&".join(f"id_from_submitter=x{n}" for n in range(101))
    status, _, doc = call(sandbox, "GET", f"/messages?{too_many}")
    assert status == 422 and "at most 100 id_from_submitter" in error(doc)[1]


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ("limit=0", "limit"),
        ("limit=x", "limit"),
        ("limit=%C2%B2", "limit"),
        ("limit=10001", "limit"),
        ("status=sent", "status"),
    ],
)
def test_list_rejects_bad_filters(sandbox: Sandbox, query: str, needle: str) -> None:
    status, _, doc = call(sandbox, "GET", f"/messages?{query}")
    code, message = error(doc)
    assert status == 422 and code == "bad_data" and needle in message


@pytest.mark.parametrize(
    "query", ["page=2", "foo=1&limit=1", "limit=1&&&=", "cursor", "page=2&page=3"]
)
def test_unknown_query_parameters_are_ignored_on_every_endpoint(
    sandbox: Sandbox, query: str
) -> None:
    # clients of other API versions send page= or cursors; the get ignored them already
    _, doc = post(sandbox, {**WELCOME, "render_only": True})
    status, _, listed = call(sandbox, "GET", f"/messages?{query}")
    assert status == 200 and isinstance(listed["data"], list), listed
    if "limit=1" in query:
        assert len(listed["data"]) == 1
    status, _, got = call(sandbox, "GET", f"/messages/{doc['data']['id']}?{query}")
    assert status == 200 and got["data"]["id"] == doc["data"]["id"]


# -- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "JSON"),
        (b"[]", "message"),
        (b'{"message": "x"}', "message"),
        (b'{"message": {"type": "email", "data": {"x": NaN}}}', "NaN is not valid JSON"),
        (b'{"message": {"type": "email", "data": {"a": 1e999}}}', "1e999 is too large"),
        (b'{"message": {"data": ' + b"[" * 20000 + b"]" * 20000 + b"}}", "nested"),
        (b"\xff\xfe", "JSON"),
        ({"message": {"to": "a@example.com", "project": "demo", "template": "welcome"}},
         "message.type"),
        ({"message": {"type": "fax", "to": "a@example.com", "project": "demo"}}, "message.type"),
        ({"message": {"type": "email", "project": "demo", "template": "welcome"}},
         "message.to"),
        ({"message": {"type": "email", "to": "nobody", "project": "demo",
                      "template": "welcome"}}, "message.to"),
        ({"message": {"type": "email", "to": "a@example.com", "template": "welcome"}},
         "message.project"),
        ({"message": {"type": "email", "to": "a@example.com", "project": "demo"}}, "content"),
        ({"message": {"type": "email", "to": "a@example.com", "project": "demo",
                      "template": "welcome", "data": [1]}}, "message.data"),
        ({"message": {"type": "email", "to": "a@example.com", "project": "demo",
                      "template": "welcome", "sync": "yes"}}, "message.sync"),
        ({"message": {"type": "email", "to": 5, "project": "demo"}}, "message.to"),
        ({"message": {"type": "email", "to": "a@example.com", "project": "demo",
                      "subject": "a\r\nBcc: x@y.z", "text_body": "x"}}, "message.subject"),
        ({"message": {"type": "sms", "to": "+1", "project": "demo", "html_body": "<b>"}},
         "text"),
        ({"message": {"type": "email", "to": "a@example.com", "project": "demo",
                      "template": "reminder"}}, "message.template"),
    ],
)  # fmt: skip
def test_bad_data_names_the_field(sandbox: Sandbox, body: Any, field: str) -> None:
    status, _, doc = call(sandbox, "POST", "/messages", body)
    code, message = error(doc)
    assert (status, code) == (422, "bad_data")
    assert field in message


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"project": "nope"}, "unknown project 'nope'"),
        ({"project": None, "project_id": "00000000-0000-0000-0000-000000000000"}, "project"),
        ({"template": "nope"}, "unknown template 'nope'"),
        ({"backend": "mailgun"}, "unknown backend 'mailgun'"),
        ({"backend": "smtp"}, "--smtp"),
    ],
)
def test_unknown_project_template_backend_are_config_issues(
    sandbox: Sandbox, changes: dict[str, Any], needle: str
) -> None:
    msg = {**WELCOME, **changes}
    status, doc = post(sandbox, {k: v for k, v in msg.items() if v is not None})
    code, message = error(doc)
    assert (status, code) == (422, "config_issue") and needle in message


def test_ids_select_project_template_and_backend(sandbox: Sandbox) -> None:
    _, first = post(sandbox, {**WELCOME, "sync": True})
    m = first["data"]
    _, doc = post(
        sandbox,
        {"type": "email", "to": "a@example.com", "project_id": m["project_id"],
         "template_id": m["template_id"], "backend_id": m["backend_id"], "sync": True},
    )  # fmt: skip
    assert doc["data"]["project"] == "demo" and doc["data"]["template"] == "welcome"
    assert doc["data"]["status"] == "delivered"


def test_null_fields_count_as_absent(sandbox: Sandbox) -> None:
    status, doc = post(sandbox, {**WELCOME, "subject": None, "data": None, "sync": True})
    assert status == 200 and doc["data"]["data"] == {}


# -- HTTP: routes, methods, sizes ----------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/nope", 404, "not_found"),
        ("GET", "/messages/a/b", 404, "not_found"),
        ("DELETE", "/messages", 405, "method_not_allowed"),
        ("PUT", "/messages/abc", 405, "method_not_allowed"),
        ("PATCH", "/messages", 405, "method_not_allowed"),
        ("BREW", "/messages", 405, "method_not_allowed"),
    ],
)
def test_unknown_paths_and_methods_answer_json(
    sandbox: Sandbox, method: str, path: str, status: int, code: str
) -> None:
    got, headers, doc = call(sandbox, method, path, auth="none")
    assert got == status and error(doc)[0] == code
    if status == 405:
        assert "GET" in headers["Allow"]


def test_body_over_10_mib_is_413_without_reading_it(sandbox: Sandbox) -> None:
    base = urlsplit(sandbox.url)
    conn = http.client.HTTPConnection(base.hostname, base.port, timeout=30)
    conn.putrequest("POST", base.path + "/messages")
    conn.putheader("Content-Length", str(10 * 1024 * 1024 + 1))
    conn.endheaders()
    resp = conn.getresponse()
    assert resp.status == 413 and error(json.loads(resp.read()))[0] == "payload_too_large"
    conn.close()


def test_malformed_request_line_gets_json_not_html(sandbox: Sandbox) -> None:
    import socket

    base = urlsplit(sandbox.url)
    with socket.create_connection((base.hostname, base.port), timeout=10) as s:
        s.sendall(b"GARBAGE\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and b"application/json" in head
    assert error(json.loads(body))[0] == "bad_request"


def test_keep_alive_serves_many_requests_on_one_connection(sandbox: Sandbox) -> None:
    base = urlsplit(sandbox.url)
    conn = http.client.HTTPConnection(base.hostname, base.port, timeout=30)
    for i in range(5):
        body = json.dumps({"message": {**WELCOME, "id_from_submitter": f"ka{i}"}}).encode()
        target = base.path + "/messages"
        conn.request("POST", target, body=body, headers=signing.auth_headers(
            key=sandbox.key, passphrase=sandbox.passphrase, secret=sandbox.secret,
            method="POST", path=target, body=body))  # fmt: skip
        resp = conn.getresponse()
        assert (
            resp.status == 200 and json.loads(resp.read())["data"]["id_from_submitter"] == f"ka{i}"
        )
        assert not resp.will_close
    conn.close()


def test_chunked_body_is_accepted(sandbox: Sandbox) -> None:
    base = urlsplit(sandbox.url)
    body = json.dumps({"message": {**WELCOME, "sync": True}}).encode()
    target = base.path + "/messages"
    conn = http.client.HTTPConnection(base.hostname, base.port, timeout=30)
    headers = signing.auth_headers(
        key=sandbox.key, passphrase=sandbox.passphrase, secret=sandbox.secret,
        method="POST", path=target, body=body,
    )  # fmt: skip
    conn.request("POST", target, body=iter([body[:10], body[10:]]), headers=headers,
                 encode_chunked=True)  # fmt: skip
    resp = conn.getresponse()
    assert resp.status == 200 and json.loads(resp.read())["data"]["status"] == "delivered"
    conn.close()


def test_request_log_has_one_line_per_request_and_no_secrets(sandbox: Sandbox) -> None:
    marker = f"/messages/log-marker-{time.time_ns()}"
    call(sandbox, "GET", marker)
    call(sandbox, "GET", marker, auth="unsigned")
    deadline = time.monotonic() + 5
    while sandbox.log().count(marker) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    lines = [x for x in sandbox.log().splitlines() if marker in x]
    assert len(lines) == 2 and all(x.startswith("GET /v1") and " 404 " in x for x in lines)
    for secret in (sandbox.secret, sandbox.passphrase, sandbox.unsigned_secret,
                   sandbox.unsigned_passphrase):  # fmt: skip
        assert secret not in sandbox.log()


def _raw_exchange(sb: Sandbox, data: bytes, then: bytes = b"") -> list[bytes]:
    """Send raw bytes; returns everything the server sent, split at each blank line."""
    import socket

    base = urlsplit(sb.url)
    with socket.create_connection((base.hostname, base.port), timeout=10) as s:
        s.sendall(data)
        if then:
            first = s.recv(4096)
            s.sendall(then)
        else:
            first = b""
        received = first
        while chunk := s.recv(65536):
            received += chunk
    return received.split(b"\r\n\r\n")


def test_expect_100_continue_is_answered_before_the_body(sandbox: Sandbox) -> None:
    body = json.dumps({"message": {**WELCOME, "sync": True}}).encode()
    target = urlsplit(sandbox.url).path + "/messages"
    headers = signing.auth_headers(
        key=sandbox.key, passphrase=sandbox.passphrase, secret=sandbox.secret,
        method="POST", path=target, body=body,
    )  # fmt: skip
    head = f"POST {target} HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nConnection: close\r\n"
    head += f"Content-Length: {len(body)}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    parts = _raw_exchange(sandbox, head.encode(), then=body)
    assert parts[0] == b"HTTP/1.1 100 Continue"
    assert parts[1].startswith(b"HTTP/1.1 200 OK")
    assert json.loads(parts[2])["data"]["status"] == "delivered"


def test_http_1_0_without_keep_alive_is_closed_after_the_answer(sandbox: Sandbox) -> None:
    parts = _raw_exchange(sandbox, b"GET /v1/nope HTTP/1.0\r\n\r\n")
    assert parts[0].startswith(b"HTTP/1.1 404") and b"Connection: close" in parts[0]
    assert error(json.loads(parts[1]))[0] == "not_found"


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /v1/messages HTTP/1.1\r\nno colon here\r\n\r\n", b"400"),
        (b"GET /v1/messages HTTP/1.1\r\n" + b"X-A: b\r\n" * 101 + b"\r\n", b"431"),
        (b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n", b"414"),
        (b"GET /v1/messages HTTP/2.0\r\n\r\n", b"400"),
        (b"POST /v1/messages HTTP/1.1\r\nContent-Length: ten\r\n\r\n", b"400"),
    ],
)
def test_malformed_requests_get_one_json_error(
    sandbox: Sandbox, request_bytes: bytes, status: bytes
) -> None:
    parts = _raw_exchange(sandbox, request_bytes)
    assert parts[0].startswith(b"HTTP/1.1 " + status), parts[0]
    assert b"application/json" in parts[0]
    assert error(json.loads(parts[1]))[0] == "bad_request"
