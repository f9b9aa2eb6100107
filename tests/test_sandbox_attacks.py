"""The sandbox against the attacker trial's stalls and odd inputs (attacker trial 1,
findings 12, 13 and 14): searches over large messages and many template event streams
leave the API answering, and hostile field values get a 422 that says what is wrong."""

from __future__ import annotations

import json
import socket
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from bench.abuse import raise_own_limit
from outkit_cli.sandbox.attachments import parse_create
from outkit_cli.sandbox.errors import ApiError
from outkit_cli.sandbox.store import SearchCutShort, Store
from tests.sandbox_fixture import Sandbox
from tests.test_inbox import fetch

Start = Callable[..., Sandbox]
# the API's answer while the attack runs: the median of a few signed GETs within 1 s
# (a loaded machine may slow one of them; none may wait for the attack to end)
PROMPT = 1.0
WORST = 5.0


def _signed_get_times(box: Sandbox, message_id: str, n: int = 5) -> list[float]:
    times = []
    for _ in range(n):
        started = time.monotonic()
        status, doc = box.request("GET", f"/messages/{message_id}")
        times.append(time.monotonic() - started)
        assert status == 200, doc
    return times


def _small(box: Sandbox) -> str:
    status, doc = box.request("POST", "/messages", {"message": {
        "type": "sms", "project": "demo", "to": "+4712345678", "text_body": "hi"}})  # fmt: skip
    assert status == 200, doc
    return str(doc["data"]["id"])


def test_the_api_answers_while_searches_read_large_messages(start_sandbox: Start) -> None:
    box = start_sandbox()
    big = "a" * 3_000_000
    for _ in range(16):  # 96 MB of bodies for each search to read
        status, doc = box.request("POST", "/messages", {"message": {
            "type": "email", "project": "demo", "to": "a@example.com", "subject": "big",
            "html_body": big, "text_body": big, "test": True}})  # fmt: skip
        assert status == 200, doc
    message_id = _small(box)
    stop = threading.Event()
    answers: list[int] = []

    def search(i: int) -> None:
        while not stop.is_set():
            status, _, _ = fetch(box, f"/rows?q=nomatch{i}")
            answers.append(status)

    threads = [threading.Thread(target=search, args=(i,), daemon=True) for i in range(10)]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 120
        while not answers and time.monotonic() < deadline:  # the searches are under way
            time.sleep(0.05)
        assert answers, "no search was answered"
        times = _signed_get_times(box, message_id)
    finally:
        stop.set()
        for thread in threads:
            thread.join(120)
    assert statistics.median(times) < PROMPT and max(times) < WORST, times
    # past the few searches at once, a search is refused at once rather than queued
    assert set(answers) <= {200, 503}, set(answers)


def test_a_search_past_its_deadline_answers_with_what_it_found(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite3")
    try:
        for i in range(400):
            store.insert({"id": f"m-{i}", "status": "received", "done": False,
                          "id_from_submitter": None, "to": "a@example.com",
                          "subject": f"hello {i}", "text_body": "x" * 1000})  # fmt: skip
        full = store.page(limit=1000, search="hello", seconds=60)
        assert len(full) == 400
        with pytest.raises(SearchCutShort) as cut:
            store.page(limit=1000, search="hello", seconds=0)
        found = [doc["id"] for _, doc in cut.value.rows]
        assert len(found) < 400
        assert found == [doc["id"] for _, doc in full[: len(found)]]  # the newest, in order
        assert len(store.page(limit=10, search="hello", seconds=60)) == 10  # the store goes on
    finally:
        store.close()


def test_many_template_event_streams_leave_the_api_answering(
    start_sandbox: Start, tmp_path: Path
) -> None:
    project = tmp_path / "templates" / "acme"
    project.mkdir(parents=True)
    for i in range(150):  # 300 template files
        (project / f"t{i}.html").write_text("<p>Hello {{name}}</p>")
        (project / f"t{i}.txt").write_text("Hello {{name}}")
    box = start_sandbox(templates=tmp_path / "templates")
    message_id = _small(box)
    raise_own_limit(1200)
    parts = urlsplit(box.inbox_url)
    streams = []
    try:
        for _ in range(500):
            sock = socket.create_connection((parts.hostname, parts.port), timeout=60)
            streams.append(sock)
            sock.sendall(f"GET /templates/events HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n"
                         .encode())  # fmt: skip
        firsts = [_read_until(sock, b"data: ") for sock in streams]  # every stream is open
        times = _signed_get_times(box, message_id)
        assert statistics.median(times) < PROMPT and max(times) < WORST, times
        # one watcher still sees an edit, and every stream hears of it
        (project / "t0.txt").write_text("Hello again, {{name}}")
        for sock, first in zip(streams[:20], firsts[:20], strict=True):
            assert _read_until(sock, b"data: ", after=first) != first
    finally:
        for sock in streams:
            sock.close()


def _read_until(sock: socket.socket, marker: bytes, after: bytes = b"") -> bytes:
    """The event line after `marker` that comes next on `sock` (and differs from `after`)."""
    data = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
        for line in data.split(b"\n"):
            if line.startswith(marker) and line != after and data.endswith(b"\n"):
                return line
    raise AssertionError(f"no event on the stream: {data[-200:]!r}")


def _create(box: Sandbox, **fields: Any) -> tuple[int, str]:
    message = {"type": "email", "project": "demo", "to": "a@example.com", "subject": "s",
               "text_body": "hi", **fields}  # fmt: skip
    status, doc = box.request("POST", "/messages", {"message": message})
    return status, json.dumps(doc)


@pytest.mark.parametrize(
    ("to", "needle"),
    [
        ("a\u0000@example.com", "control character"),
        ("ada@example.com\u001b[2J", "control character"),
        ("a" * 3_000_000 + "@example.com", "over the limit of 16,384"),
        ("a" * 300 + "@example.com", "RFC 5321"),
        ("Ada " * 300 + "<ada@example.com>", "998"),
        # comments nested 1,000 deep made the email package recurse past Python's limit: 500
        # (Python 3.13's stricter address parser refuses it before recursing)
        ("(" * 1000 + "a@example.com", "nested too deeply|is not an email address"),
    ],
)
def test_hostile_addresses_are_refused_saying_why(sandbox: Sandbox, to: str, needle: str) -> None:
    needles = needle.split("|")  # any of them: what the Python version's parser says
    status, text = _create(sandbox, to=to)
    assert status == 422 and any(n in text for n in needles), text[:500]
    status, text = _create(sandbox, **{"from": to.replace("\u0000", "").replace("\u001b", "")})
    if len(needles) > 1:
        # Python 3.13 parses the nested sender without recursing: a sender is not checked
        # for an @ (only `to` is), so it is taken; never a 500
        assert status in (200, 422), text[:500]
    elif "control" not in needle:
        assert status == 422 and any(n in text for n in needles), text[:500]
        assert "message.from" in text, text[:500]


def test_a_huge_integer_is_refused_in_our_words(sandbox: Sandbox) -> None:
    body = '{"message": {"type": "email", "project": "demo", "to": "a@example.com", ' \
           '"text_body": "hi", "data": {"n": ' + "9" * 5000 + "}}}"  # fmt: skip
    status, doc = sandbox.request("POST", "/messages", body)
    message = doc["error"]["message"]
    assert status == 422 and "5,000 digits" in message, message
    assert "sys.set_int_max_str_digits" not in message and "Python" not in message


def test_a_multipart_boundary_over_70_characters_is_called_too_long() -> None:
    boundary = "b" * 71
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"message\"\r\n\r\n{{}}\r\n"
            f"--{boundary}--\r\n").encode()  # fmt: skip
    with pytest.raises(ApiError) as err:
        parse_create(f"multipart/form-data; boundary={boundary}", body)
    assert "71 characters" in err.value.message and "RFC 2046" in err.value.message
    with pytest.raises(ApiError) as err:
        parse_create("multipart/form-data", body)
    assert "without a boundary parameter" in err.value.message


def test_a_body_with_too_many_json_values_is_refused_before_it_is_parsed(
    sandbox: Sandbox,
) -> None:
    # 800,000 keys in 9.5 MB: 0.55 s of parsing with the GIL held, as long again to store;
    # two clients sending such bodies kept a signed GET waiting 2.3 s (attacker trial)
    from outkit_cli.sandbox.app import MAX_JSON_ITEMS
    from tests.test_sandbox_api import WELCOME, call, error

    def body(keys: int) -> bytes:
        data = ",".join(f'"k{i}":0' for i in range(keys))
        message = json.dumps(WELCOME, separators=(",", ":"))[:-1] + ',"data":{' + data + "}}"
        return b'{"message":' + message.encode() + b"}"

    over = body(MAX_JSON_ITEMS)  # with the body's own braces and commas: over
    status, _, doc = call(sandbox, "POST", "/messages", over)
    assert status == 422
    code, message = error(doc)
    assert code == "bad_data"
    assert "too many JSON values" in message and f"at most {MAX_JSON_ITEMS:,}" in message
    # well under it: stored, every key kept
    status, _, doc = call(sandbox, "POST", "/messages", body(MAX_JSON_ITEMS // 2))
    assert status == 200, doc
    assert len(doc["data"]["data"]) == MAX_JSON_ITEMS // 2


def test_an_integer_of_over_100_digits_is_refused(sandbox: Sandbox) -> None:
    # writing a 4,000-digit integer back out holds the GIL 0.3 ms; 2,300 of them, 0.7 s
    def create(digits: int) -> tuple[int, Any]:
        body = json.dumps({"message": {"type": "email", "project": "demo", "to": "a@example.com",
                                       "text_body": "hi"}})[:-2]  # fmt: skip
        return sandbox.request("POST", "/messages", body + ',"data":{"n":' + "9" * digits + "}}}")

    status, doc = create(101)
    assert status == 422, doc
    assert "integer of 101 digits; the sandbox takes at most 100" in doc["error"]["message"]
    status, doc = create(100)
    assert status == 200 and doc["data"]["data"]["n"] == int("9" * 100)


def test_large_creates_take_turns_and_small_ones_pass(start_sandbox: Start) -> None:
    sandbox = start_sandbox()  # its own: no other test's sync request holds a turn
    # two clients sending 200,000-value bodies back to back kept a GET waiting 2.2 s
    from outkit_cli.sandbox.app import LARGE_CREATE

    items = ["x" * 100] * (LARGE_CREATE // 100)  # over LARGE_CREATE bytes of JSON
    slow = "{{#each items}}{{#each ../items}}{{#each ../../items}}x{{/each}}{{/each}}{{/each}}"
    first_body = {"message": {"type": "email", "project": "demo", "to": "a@example.com",
                              "subject": "s", "text_template_body": slow, "sync": True,
                              "data": {"items": items}}}  # fmt: skip
    large = {"message": {"type": "email", "project": "demo", "to": "a@example.com",
                         "text_body": "hi", "data": {"items": items}}}  # fmt: skip
    assert len(json.dumps(large)) > LARGE_CREATE
    first: list[tuple[int, Any]] = []
    thread = threading.Thread(
        target=lambda: first.append(sandbox.request("POST", "/messages", first_body))
    )
    thread.start()  # renders until the render time limit, holding the turn
    deadline = time.monotonic() + 30
    while not sandbox.messages() and thread.is_alive():  # stored: it holds the turn now
        assert time.monotonic() < deadline
        time.sleep(0.02)
    refused = None
    while thread.is_alive() and refused is None:
        status, doc = sandbox.request("POST", "/messages", large)
        if status == 503:
            refused = doc
        time.sleep(0.05)
    thread.join()
    assert first and first[0][0] == 200, first
    assert refused is not None, "no large create was refused while another was handled"
    assert refused["error"]["code"] == "unavailable"
    assert "nothing was stored: retry after 1 s" in refused["error"]["message"]
    # small creates were never held up, and the turn is free again
    assert (
        sandbox.request("POST", "/messages", {"message": {**large["message"], "data": {}}})[0]
        == 200
    )
    assert sandbox.request("POST", "/messages", large)[0] == 200
