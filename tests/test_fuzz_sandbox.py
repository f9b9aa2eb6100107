"""The sandbox's request handling, fuzzed over raw sockets.

Malformed HTTP (request lines, headers, Content-Length, chunked bodies, truncated and
abandoned bodies, pipelining, HTTP/1.0) and malformed JSON (invalid UTF-8, deep nesting,
wrong types in every field, random documents). For every input: any answer that comes is
JSON with a 4xx status and `{"error": {"message", "code"}}` (signed, well-formed random
bodies: 200 or 422), the server process stays alive and still answers a signed request,
and the messages accepted before the fuzzing read back byte-for-byte the same.

One private sandbox serves the whole module (started with the same `launch` that
`start_sandbox` uses, at module scope so the fuzzing shares one set of "before" messages).
The number of inputs tried is printed at the end (`pytest -s`, or `make fuzz`).
"""

from __future__ import annotations

import json
import socket
import struct
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from outkit_cli import signing
from outkit_cli.message import BOOL_FIELDS, STRING_FIELDS
from outkit_cli.sandbox.app import MAX_BODY
from outkit_cli.sandbox.store import Store, _Pending
from tests.hypothesis_profiles import reliability
from tests.sandbox_fixture import Sandbox, launch

TRIED: Counter[str] = Counter()  # inputs sent, by kind: the README's figures
STATUSES: Counter[int] = Counter()
GOOD = {"type": "email", "to": "ada@example.com", "project": "demo", "text_body": "hello"}


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def error(self) -> dict[str, str]:
        """The `error` object, after checking the answer is a JSON 4xx."""
        assert 400 <= self.status < 500, (self.status, self.body[:300])
        assert self.headers.get("content-type") == "application/json"
        doc = json.loads(self.body)
        assert set(doc) == {"error"}, doc
        err = doc["error"]
        assert isinstance(err["message"], str) and err["message"]
        assert isinstance(err["code"], str) and err["code"]
        return err


@dataclass
class State:
    box: Sandbox
    host: str
    port: int
    before: dict[str, bytes]  # message id -> its GET body, taken before any fuzzing


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[State]:
    box = launch(tmp_path_factory.mktemp("fuzz-sandbox"))
    parts = urlsplit(box.url)
    st_ = State(box, parts.hostname or "127.0.0.1", parts.port or 80, {})
    for extra in ({}, {"type": "sms", "to": "+4790000000"}, {"data": {"a": [1, {"b": None}]}}):
        status, doc = box.request("POST", "/messages", {"message": {**GOOD, **extra}})
        assert status == 200, doc
        box.wait_done(doc["data"]["id"])
    for message_id in [m["id"] for m in box.messages()]:
        st_.before[message_id] = _get_raw(st_, message_id)
    yield st_
    box.stop()
    total = sum(TRIED.values())
    print(f"\nfuzz_sandbox: {total} inputs tried {dict(sorted(TRIED.items()))}")
    print(f"fuzz_sandbox: answers by status {dict(sorted(STATUSES.items()))}")


@pytest.fixture
def fz(state: State) -> Iterator[State]:
    """The shared fuzz sandbox, checked healthy and intact after each test."""
    yield state
    assert state.box.process.poll() is None, "the sandbox died:\n" + state.box.log()[-3000:]
    for message_id, raw in state.before.items():
        assert _get_raw(state, message_id) == raw, f"message {message_id} changed"
    assert "Traceback" not in state.box.log()


# -- raw HTTP ------------------------------------------------------------------------------


def _signed(st_: State, method: str, target: str, body: bytes = b"") -> dict[str, str]:
    return signing.auth_headers(
        key=st_.box.key,
        passphrase=st_.box.passphrase,
        secret=st_.box.secret,
        method=method,
        path=target,
        body=body,
    )


def request_bytes(
    st_: State,
    method: str,
    target: str,
    body: bytes = b"",
    *,
    sign: bool = True,
    headers: dict[str, str] | None = None,
    length: str | None = "auto",
    version: str = "HTTP/1.1",
) -> bytes:
    """One request's bytes; `length` None leaves Content-Length out, a string sets it."""
    lines = [f"{method} {target} {version}", f"Host: {st_.host}:{st_.port}"]
    hdrs = dict(_signed(st_, method, target, body) if sign else {})
    hdrs.update(headers or {})
    if length == "auto":
        length = str(len(body)) if body or method == "POST" else None
    if length is not None:
        hdrs["Content-Length"] = length
    lines += [f"{k}: {v}" for k, v in hdrs.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def exchange(
    st_: State,
    data: bytes,
    *,
    expect: int = 1,
    half_close: bool = True,
    timeout: float = 10.0,
    kind: str | None = "raw",
    head: bool = False,
) -> list[Answer]:
    """Send `data` on a new connection and read up to `expect` answers (fewer if the
    server closes first). `half_close` shuts our sending side, as a client does at EOF.
    `kind` is what the input counts as in the figures (None: a health check, not counted)."""
    if kind is not None:
        TRIED[kind] += 1
    sock = socket.create_connection((st_.host, st_.port), timeout=timeout)
    buf = b""
    answers: list[Answer] = []
    try:
        try:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server refused early; its answer (if any) is still readable
        while len(answers) < expect:
            parsed = _parse(buf, is_head=head)
            if parsed is not None:
                answer, buf = parsed
                answers.append(answer)
                if kind is not None:
                    STATUSES[answer.status] += 1
                continue
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            buf += chunk
    finally:
        sock.close()
    return answers


def _parse(buf: bytes, is_head: bool = False) -> tuple[Answer, bytes] | None:
    """One answer from the front of `buf`; an answer to HEAD has no body, whatever its
    Content-Length says."""
    head, sep, rest = buf.partition(b"\r\n\r\n")
    if not sep:
        return None
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    status = int(status_line.split()[1])
    if status == 100:  # Expect: 100-continue, then the real answer
        return _parse(rest, is_head)
    length = 0 if is_head else int(headers["content-length"])
    if len(rest) < length:
        return None
    return Answer(status, headers, rest[:length]), rest[length:]


def one_error(st_: State, data: bytes, status: int | tuple[int, ...] | None = None) -> dict:
    """Exactly one answer, a JSON 4xx (of `status` when given); returns its error object."""
    answers = exchange(st_, data)
    assert len(answers) == 1, f"no answer to {data[:120]!r}"
    err = answers[0].error()
    if status is not None:
        wanted = status if isinstance(status, tuple) else (status,)
        assert answers[0].status in wanted, (answers[0].status, err)
    return err


def _get_raw(st_: State, message_id: str) -> bytes:
    target = f"/v1/messages/{message_id}"
    data = request_bytes(st_, "GET", target, headers={"Connection": "close"})
    answers = exchange(st_, data, kind=None)
    assert answers and answers[0].status == 200, answers
    return answers[0].body


def still_answers(st_: State) -> None:
    status, doc = st_.box.request("POST", "/messages", {"message": GOOD})
    assert status == 200, doc


# -- the request line and headers ------------------------------------------------------------

GARBAGE_LINES = [
    b"\r\n\r\n",
    b"GET\r\n\r\n",
    b"GET /v1/messages\r\n\r\n",
    b"GET /v1/messages HTTP/2.0\r\n\r\n",
    b"GET /v1/messages FTP/1.1\r\n\r\n",
    b"GET /v1/messages HTTP/1.1 extra\r\n\r\n",
    b"\x00\x01\x02\x03 /v1/messages HTTP/1.1\r\n\r\n",
    b"\xff\xfe\xfd /v1/messages HTTP/1.1\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(32)) + b"\r\n\r\n",  # TLS
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",  # an HTTP/2 preface
    b"GET /v1/messages HTTP/1.1\r\nno colon here\r\n\r\n",
    b"GET /v1/messages HTTP/1.1\r\n: empty name\r\n\r\n",
]


@pytest.mark.parametrize("data", GARBAGE_LINES, ids=range(len(GARBAGE_LINES)))
def test_garbage_request_lines_get_a_json_4xx(fz: State, data: bytes) -> None:
    answers = exchange(fz, data)
    # a bare CRLF pair is an empty line: http.server's clients may send it; no answer is fine
    if data == b"\r\n\r\n":
        assert len(answers) <= 1
    else:
        assert len(answers) == 1, data
    for answer in answers:
        answer.error()
    still_answers(fz)


def test_oversized_request_line_and_headers(fz: State) -> None:
    long_target = "/v1/messages?" + "a" * 70_000
    one_error(fz, f"GET {long_target} HTTP/1.1\r\n\r\n".encode(), 414)
    huge = request_bytes(fz, "GET", "/v1/messages", headers={"X-Huge": "h" * 70_000})
    assert exchange(fz, huge)[0].status == 431
    many = request_bytes(fz, "GET", "/v1/messages", headers={f"X-{i}": "v" for i in range(200)})
    one_error(fz, many, 431)
    # below the limits, a big but legal header set is fine
    ok = request_bytes(fz, "GET", "/v1/messages?limit=1", headers={"X-Big": "b" * 60_000})
    assert exchange(fz, ok)[0].status == 200
    still_answers(fz)


@pytest.mark.parametrize("target", ["/v2/messages", "//[", "http://[/x"])
def test_paths_outside_the_api_are_the_inboxs_html_404(fz: State, target: str) -> None:
    """A browser's request gets the inbox's page; an API client's (it carries
    Outkit-Access-Key: an API URL without /v1) a JSON 404 it can read, saying so."""
    answers = exchange(fz, request_bytes(fz, "GET", target, sign=False))
    assert [a.status for a in answers] == [404]
    assert answers[0].headers["content-type"] == "text/html; charset=utf-8"
    answers = exchange(fz, request_bytes(fz, "GET", target))
    assert [a.status for a in answers] == [404]
    assert answers[0].headers["content-type"] == "application/json"
    assert "the API is under /v1" in answers[0].error()["message"]
    still_answers(fz)


@pytest.mark.parametrize("target", ["/\x7f", "/v1/messages\x1b[2J", "/\x00"])
def test_control_characters_in_the_target_are_a_malformed_request(fz: State, target: str) -> None:
    # RFC 9112 section 3.2: a request target is visible ASCII; the answer is the front
    # end's JSON 400, and the log line carries no raw control character
    assert one_error(fz, request_bytes(fz, "GET", target), 400)["code"] == "bad_request"
    assert "\x1b" not in fz.box.log() and "\x7f" not in fz.box.log()
    still_answers(fz)


@pytest.mark.parametrize(
    ("method", "target", "status"),
    [
        ("DELETE", "/v1/messages", 405),
        ("PUT", "/v1/messages", 405),
        ("PATCH", "/v1/messages/abc", 405),
        ("POST", "/v1/messages/abc", 405),
        ("GET", "/v1/messages/a/b", 404),
        ("GET", "/v1/messages/does-not-exist", 404),
        ("BREW", "/v1/messages", 405),
        ("GET", "http://[/v1/messages", 404),  # urlsplit raised on it: a 500
        ("GET", "/v1/[", 404),
    ],
)
def test_wrong_methods_and_paths_are_405_and_404(
    fz: State, method: str, target: str, status: int
) -> None:
    err = one_error(fz, request_bytes(fz, method, target), status)
    assert err["code"] in {"method_not_allowed", "not_found"}


# -- Content-Length and bodies --------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "status"),
    [
        ("-1", 400),
        ("-100", 400),
        ("+5", 400),
        ("abc", 400),
        ("", 400),
        ("1e3", 400),
        ("0x10", 400),
        ("5 5", 400),
        ("\u00b2", 400),  # a latin-1 superscript two: str.isdigit() says yes, int() says no
        ("\u00b9\u00b3", 400),
        (str(MAX_BODY + 1), 413),
        ("9" * 40, 413),
    ],
)
def test_bad_content_length(fz: State, value: str, status: int) -> None:
    body = json.dumps({"message": GOOD}).encode()
    one_error(fz, request_bytes(fz, "POST", "/v1/messages", body, length=value), status)
    still_answers(fz)


def test_oversized_body_with_expect_continue_is_refused_before_it_is_sent(fz: State) -> None:
    data = request_bytes(
        fz,
        "POST",
        "/v1/messages",
        headers={"Expect": "100-continue"},
        length=str(MAX_BODY + 1),
    )
    err = one_error(fz, data, 413)
    assert err["code"] == "payload_too_large"


def test_oversized_body_actually_sent_is_413(fz: State) -> None:
    body = b"[" + b"0," * (MAX_BODY // 2) + b"0]"
    answers = exchange(fz, request_bytes(fz, "POST", "/v1/messages", body))
    # the server answers before reading the body and closes; the reset that follows may
    # race the answer, but an answer that arrives must be the JSON 413
    for answer in answers:
        assert answer.status == 413
        answer.error()
    still_answers(fz)


def test_truncated_bodies(fz: State) -> None:
    body = json.dumps({"message": GOOD}).encode()
    for cut in (0, 1, len(body) // 2, len(body) - 1):
        # Content-Length says more than arrives before the client's EOF: never processed
        data = request_bytes(fz, "POST", "/v1/messages", body, length=str(len(body)))
        data = data[: len(data) - len(body) + cut]
        err = one_error(fz, data, 400)
        assert err["message"].startswith(f"the body ended after {cut} of {len(body)} bytes")
        # signed over what arrives: complete as far as HTTP goes, JSON cut short
        part = body[:cut]
        data = request_bytes(fz, "POST", "/v1/messages", part, length=str(len(part)))
        err = one_error(fz, data, 422)
        assert err["code"] == "bad_data"
    still_answers(fz)


def test_a_client_that_disconnects_mid_body(fz: State) -> None:
    body = json.dumps({"message": GOOD}).encode()
    for _ in range(5):
        TRIED["abandoned"] += 1
        sock = socket.create_connection((fz.host, fz.port), timeout=5)
        sock.sendall(request_bytes(fz, "POST", "/v1/messages", body, length="100000")[:-10])
        # SO_LINGER 0: close with a reset, as a killed client's kernel would
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    # and one that half-closes with part of the body missing (signed over what it sent):
    # a 400, never a message made of what arrived
    count = len(fz.box.messages())
    data = request_bytes(fz, "POST", "/v1/messages", body, length=str(len(body) + 500))
    assert "the body ended after" in one_error(fz, data, 400)["message"]
    time.sleep(0.2)
    assert len(fz.box.messages()) == count
    still_answers(fz)


def test_missing_content_length_means_no_body(fz: State) -> None:
    body = json.dumps({"message": GOOD}).encode()
    # signed as if empty: the body that follows is not read as a body but as the next request
    data = request_bytes(fz, "POST", "/v1/messages", b"", length=None) + body
    answers = exchange(fz, data, expect=2)
    assert [a.status for a in answers] == [422, 400]
    for answer in answers:
        answer.error()


@pytest.mark.parametrize(
    "size_line",
    # 20 f's: the most h11 reads, over 64 bits; it waited for 2**80 bytes and never answered
    [b"-1", b"-5", b"+5", b"0x5", b"1_0", b"zz", b"", b" ", b"5" * 40, b"f" * 20, b"1" + b"0" * 16],
)
def test_malformed_chunk_sizes(fz: State, size_line: bytes) -> None:
    head = request_bytes(
        fz, "POST", "/v1/messages", headers={"Transfer-Encoding": "chunked"}, length=None
    )
    data = head + size_line + b"\r\nabcde\r\n0\r\n\r\n"
    # 40 hex digits do not fit in 64 bits: a bad chunk size (docs/sandbox.md), not a large one
    one_error(fz, data, 400)
    still_answers(fz)


def test_a_chunk_size_over_the_limit_is_413_before_its_bytes(fz: State) -> None:
    head = request_bytes(
        fz, "POST", "/v1/messages", headers={"Transfer-Encoding": "chunked"}, length=None
    )
    # a size that fits in 64 bits but is over MAX_BODY, followed by a few bytes only
    one_error(fz, head + b"%x\r\nabcde" % (MAX_BODY + 1), 413)
    still_answers(fz)


def test_a_well_formed_chunked_body_is_accepted(fz: State) -> None:
    body = json.dumps({"message": GOOD}).encode()
    head = request_bytes(
        fz, "POST", "/v1/messages", body, headers={"Transfer-Encoding": "chunked"}, length=None
    )
    head = head[: len(head) - len(body)]
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in (body[:7], body[7:]))
    answers = exchange(fz, head + chunks + b"0\r\n\r\n")
    assert answers[0].status == 200, answers[0].body


def test_oversized_chunked_body_is_413(fz: State) -> None:
    head = request_bytes(
        fz, "POST", "/v1/messages", headers={"Transfer-Encoding": "chunked"}, length=None
    )
    # a chunk that really carries more than the limit: answered once the limit is passed
    one_error(fz, head + b"%x\r\n" % (MAX_BODY + 1) + b"x" * (MAX_BODY + 1), 413)


# -- HTTP versions and pipelining -----------------------------------------------------------


def test_http_1_0_is_answered_and_closed(fz: State) -> None:
    answers = exchange(
        fz, request_bytes(fz, "GET", "/v1/messages?limit=1", version="HTTP/1.0"), expect=2
    )
    assert [a.status for a in answers] == [200]
    assert answers[0].headers.get("connection") == "close"
    unsigned = request_bytes(fz, "GET", "/v1/messages", sign=False, version="HTTP/1.0")
    assert one_error(fz, unsigned, 401)["code"] == "unauthorized"


def test_pipelined_requests_are_answered_in_order(fz: State) -> None:
    first_id = next(iter(fz.before))
    body = json.dumps({"message": {**GOOD, "id_from_submitter": "pipelined"}}).encode()
    data = (
        request_bytes(fz, "GET", f"/v1/messages/{first_id}")
        + request_bytes(fz, "POST", "/v1/messages", body)
        + request_bytes(fz, "GET", "/v1/nothing-here")
        + request_bytes(fz, "POST", "/v1/messages", b"{not json")
        + request_bytes(fz, "GET", "/v1/messages?limit=1")
    )
    answers = exchange(fz, data, expect=5)
    assert [a.status for a in answers] == [200, 200, 404, 422, 200]
    assert json.loads(answers[0].body)["data"]["id"] == first_id
    created = json.loads(answers[1].body)["data"]
    assert created["id_from_submitter"] == "pipelined"
    assert json.loads(answers[4].body)["data"][0]["id"] == created["id"]


# -- the JSON body ----------------------------------------------------------------------------


def post(st_: State, body: bytes, kind: str = "raw") -> Answer:
    answers = exchange(st_, request_bytes(st_, "POST", "/v1/messages", body), kind=kind)
    assert len(answers) == 1, body[:200]
    return answers[0]


@pytest.mark.parametrize(
    "body",
    [
        b"\xff\xfe\x00",
        b'{"message": {"type": "email", "to": "\xe9@x.co"}}',  # latin-1, not UTF-8
        b'{"message": {"to": "a@b.co", "text_body": "\xc3"}}',  # a cut multi-byte sequence
        b'{"message": {"type": "email", "to": "a@b.co", "project": "demo",'
        b' "text_body": "\xed\xa0\x80"}}',  # an encoded surrogate: not UTF-8
        b"\xef\xbb\xbf{}",  # a byte-order mark
    ],
)
def test_invalid_utf8_bodies_are_422(fz: State, body: bytes) -> None:
    err = post(fz, body).error()
    assert err["code"] == "bad_data"


def _with(**fields: Any) -> bytes:
    return json.dumps({"message": {**GOOD, **fields}}).encode()


@pytest.mark.parametrize(
    "body",
    [
        _with(text_body="\ud800"),  # json.dumps writes the lone surrogate as an escape
        _with(id_from_submitter="x\udfff"),
        _with(to="\udc80@example.com"),
        _with(data={"k\ud83d": 1}),
        _with(data={"deep": [[{"v": "\udbff"}]]}),
        json.dumps({"message": GOOD}).encode("utf-16"),  # JSON is UTF-8 (RFC 8259)
    ],
)
def test_lone_surrogates_and_other_encodings_are_422_not_500(fz: State, body: bytes) -> None:
    # a lone surrogate is valid JSON syntax but no character: it used to reach the store,
    # fail to encode (a 500) and leave the pooled connection inside a transaction
    err = post(fz, body).error()
    assert err["code"] == "bad_data"
    still_answers(fz)


def test_a_surrogate_pair_escape_is_a_real_character(fz: State) -> None:
    answer = post(fz, _with(text_body="smile \ud83d\ude00"))
    assert answer.status == 200
    assert json.loads(answer.body)["data"]["text_body"] == "smile \U0001f600"


def test_a_group_commit_survives_a_row_that_cannot_be_encoded(tmp_path: Path) -> None:
    # defence in depth below parse_message: in a group commit (rows of concurrent requests
    # written together) a row that raises something other than sqlite3.Error used to
    # escape, leaving the other rows unsettled (their requests answered 200 for rows never
    # written) and a transaction open on a pooled connection
    store = Store(tmp_path / "s.sqlite3")
    try:
        good = {"id": "a", "status": "received", "done": False, "id_from_submitter": None}
        rows = [
            _Pending(("bad", "received", 0, None, '{"text":"\ud800"}')),
            _Pending(("a", "received", 0, None, json.dumps(good))),
        ]
        store._commit(rows)
        assert [r.settled for r in rows] == [True, True]
        assert isinstance(rows[0].error, UnicodeEncodeError) and rows[1].error is None
        assert store.get("a") == good and store.get("bad") is None
        assert not any(conn.in_transaction for conn in list(store._pool))
    finally:
        store.close()


@pytest.mark.parametrize("depth", [100, 999, 1000, 5000, 100_000])
def test_deep_nesting_is_422_or_accepted_never_a_500(fz: State, depth: int) -> None:
    data = "[" * depth + "]" * depth
    body = json.dumps({"message": {**GOOD, "data": {"deep": "X"}}}).replace('"X"', data)
    answer = post(fz, body.encode())
    if depth >= 1000:
        assert answer.error()["code"] == "bad_data"
    else:
        assert answer.status in (200, 422), answer.body[:300]
    deep_message = "{" + '"message":{' * depth + "}" * depth + "}"
    assert post(fz, deep_message.encode()).error()["code"] == "bad_data"
    still_answers(fz)


def test_nesting_limit_is_the_same_on_every_python(fz: State) -> None:
    # body object, message, data, "deep": 3 levels before the arrays begin
    def body(arrays: int) -> bytes:
        data = "[" * arrays + "]" * arrays
        return (
            json.dumps({"message": {**GOOD, "data": {"deep": "X"}}}).replace('"X"', data).encode()
        )

    assert post(fz, body(97)).status == 200
    err = post(fz, body(98)).error()
    assert err["code"] == "bad_data"
    assert "more than 100 levels" in err["message"]


WRONG_VALUES: list[Any] = [1, -1.5, True, None, [], ["x"], {}, {"a": 1}, "x", 10**30]


def _wrong_for(field: str) -> list[Any]:
    if field in BOOL_FIELDS:
        return [v for v in WRONG_VALUES if not isinstance(v, bool) and v is not None]
    if field == "data":  # [] is PHP's empty map: accepted as no locals
        return [v for v in WRONG_VALUES if not isinstance(v, dict) and v not in (None, [])]
    return [v for v in WRONG_VALUES if not isinstance(v, str) and v is not None]


@pytest.mark.parametrize("field", [*STRING_FIELDS, *BOOL_FIELDS, "data"])
def test_wrong_types_in_every_field_are_422_naming_the_field(fz: State, field: str) -> None:
    for value in _wrong_for(field):
        body = json.dumps({"message": {**GOOD, field: value}}).encode()
        err = post(fz, body).error()
        assert err["code"] == "bad_data"
        assert f"message.{field}" in err["message"], (field, value, err)


@pytest.mark.parametrize(
    "doc",
    [[], "message", 1, None, {}, {"message": None}, {"message": []}, {"message": "x"},
     {"message": 1}, {"msg": {}}],
)  # fmt: skip
def test_wrong_top_level_shapes_are_422(fz: State, doc: Any) -> None:
    assert post(fz, json.dumps(doc).encode()).error()["code"] == "bad_data"


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity", "1e999", "-1E+999"])
def test_non_json_constants_are_422(fz: State, constant: str) -> None:
    body = json.dumps({"message": {**GOOD, "data": {"n": 0}}}).replace("0}", constant + "}")
    assert post(fz, body.encode()).error()["code"] == "bad_data"


# -- hypothesis: random bodies with valid signatures -----------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=20,
)


def _field_values(name: str) -> st.SearchStrategy[Any]:
    # mostly the right type, so that the checks after the type checks are reached too
    right: st.SearchStrategy[Any] = (
        st.booleans() if name in BOOL_FIELDS
        else st.dictionaries(st.text(max_size=8), json_values, max_size=4) if name == "data"
        else st.sampled_from(["email", "sms"]) if name == "type"
        else st.sampled_from(["demo", "nope"]) if name == "project"
        else st.sampled_from(["welcome", "reminder", "nope"]) if name == "template"
        else st.text(max_size=40)
    )  # fmt: skip
    return st.integers(0, 5).flatmap(lambda n: right if n else json_values)


message_docs = (
    st.dictionaries(st.sampled_from([*STRING_FIELDS, *BOOL_FIELDS, "data"]), st.none(), max_size=5)
    .flatmap(lambda keys: st.fixed_dictionaries({k: _field_values(k) for k in keys}))
    .map(lambda m: {"message": {**GOOD, **m}})
)


def _only_200_or_422(st_: State, body: bytes, kind: str) -> None:
    answer = post(st_, body, kind=kind)
    assert answer.status in (200, 422), (answer.status, answer.body[:300], body[:300])
    assert answer.headers.get("content-type") == "application/json"
    doc = json.loads(answer.body)
    if answer.status == 422:
        answer.error()
    else:
        assert set(doc) == {"data"} and isinstance(doc["data"]["id"], str)


@reliability(60)
@given(body=st.binary(max_size=300))
def test_random_bytes_as_bodies(fz: State, body: bytes) -> None:
    _only_200_or_422(fz, body, "hypothesis-bytes")


@reliability(60)
@given(doc=json_values)
def test_random_json_documents_as_bodies(fz: State, doc: Any) -> None:
    _only_200_or_422(fz, json.dumps(doc).encode(), "hypothesis-json")


@reliability(120)
@given(doc=message_docs)
def test_random_message_shaped_documents(fz: State, doc: dict[str, Any]) -> None:
    _only_200_or_422(fz, json.dumps(doc, ensure_ascii=False).encode(), "hypothesis-message")


target_chars = st.characters(min_codepoint=0x21, max_codepoint=0x7E)  # no space: one token
targets = st.one_of(
    st.builds(lambda q: f"/v1/messages?{q}", st.text(target_chars, max_size=40)),
    st.builds(lambda p: f"/v1/messages/{p}", st.text(target_chars, max_size=40)),
    st.builds(lambda t: "/" + t, st.text(target_chars, max_size=40)),
)


@reliability(60)
@given(target=targets, method=st.sampled_from(["GET", "POST", "DELETE", "HEAD", "OPTIONS"]))
def test_random_signed_targets_are_never_a_5xx(fz: State, target: str, method: str) -> None:
    data = request_bytes(fz, method, target)
    answers = exchange(fz, data, kind="hypothesis-target", head=method == "HEAD")
    assert len(answers) == 1, target
    answer = answers[0]
    if method == "HEAD":
        assert answer.body == b""  # HEAD: the headers of the answer, never its body
    if not target.startswith("/v1/"):
        # the browser inbox: an HTML page, a 404, or a 403 for a POST without its CSRF token
        assert answer.status in (200, 403, 404, 405), (answer, target)
        return
    assert answer.status in (200, 404, 405, 422), (answer, target)
    if method != "HEAD" and answer.status != 200:
        answer.error()


def test_content_length_with_transfer_encoding_is_refused_and_closed(fz: State) -> None:
    # a request smuggling shape (RFC 9112 section 6.3): one 400, and the request hidden
    # behind it is never answered
    head = request_bytes(fz, "POST", "/v1/messages", headers={"Transfer-Encoding": "chunked"},
                         length="4")  # fmt: skip
    hidden = b"GET /v1/messages HTTP/1.1\r\nHost: x\r\n\r\n"
    answers = exchange(fz, head + b"0\r\n\r\n" + hidden, expect=2)
    assert [a.status for a in answers] == [400]
    assert "Transfer-Encoding" in answers[0].error()["message"]
    still_answers(fz)
