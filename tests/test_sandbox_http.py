"""The sandbox's HTTP front end (server.py) as the applications behind it see it: routing
by path, the Response contract (bodies, Content-Type, streams), in a real server on
loopback with a real SandboxApp. The API itself is tested in test_sandbox_api.py."""

from __future__ import annotations

import asyncio
import http.client
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from outkit_cli.sandbox.app import Response, SandboxApp
from outkit_cli.sandbox.faults import Faults
from outkit_cli.sandbox.keys import load_or_create_keys
from outkit_cli.sandbox.server import SandboxServer
from outkit_cli.sandbox.templates import Catalog, builtin_dir


class Pages:
    """A stand-in for the browser inbox (issue 16): a page, a download and a stream."""

    def __init__(self) -> None:
        self.stream_closed = threading.Event()
        self.entered = threading.Event()
        self.release = threading.Event()
        self.calls: list[tuple[str, str, str | None]] = []

    def handle(self, method: str, target: str, headers: Any, body: bytes) -> Response:
        self.calls.append((method, target, headers.get("X-Test")))
        if target == "/page":
            return Response(200, "<p>héllo</p>", {"Content-Type": "text/html; charset=utf-8"})
        if target == "/slow":  # held until the test releases it
            self.entered.set()
            self.release.wait(30)
            return Response(200, "<p>slow</p>", {"Content-Type": "text/html"})
        if target == "/raw":
            return Response(200, b"\x00\xffraw", {"Content-Type": "application/octet-stream"})
        if target.startswith("/events"):
            count = int(target.partition("=")[2] or 0)
            return Response(200, "", {"Content-Type": "text/event-stream"},
                            stream=lambda: self._events(count))  # fmt: skip
        return Response(404, '{"error": {"code": "not_found", "message": "no page"}}', {})

    async def _events(self, count: int) -> AsyncIterator[bytes]:
        try:
            for i in range(count or 10**9):
                yield f"data: {i}\n\n".encode()
                await asyncio.sleep(0.01 if count else 0.2)
        finally:
            self.stream_closed.set()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[SandboxServer, Pages | None, SandboxApp]]:
    app = SandboxApp(
        data_dir=tmp_path,
        keys=load_or_create_keys(tmp_path),
        catalog=Catalog(builtin_dir(), None),
        faults=Faults(),
        log=lambda line: None,
    )
    srv = SandboxServer(("127.0.0.1", 0), app, workers=2)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    pages = Pages()
    app.inbox = pages
    yield srv, pages, app
    srv.shutdown()
    srv.server_close()
    app.close()
    thread.join(10)


def _get(srv: SandboxServer, target: str, **headers: str) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", srv.server_address[1], timeout=30)
    conn.request("GET", target, headers=headers)
    return conn.getresponse()


def test_paths_outside_v1_go_to_the_inbox_and_v1_to_the_api(server: Any) -> None:
    srv, pages, _ = server
    resp = _get(srv, "/page", **{"X-Test": "yes"})
    assert resp.status == 200 and resp.read().decode() == "<p>héllo</p>"
    assert resp.getheader("Content-Type") == "text/html; charset=utf-8"
    assert pages.calls == [("GET", "/page", "yes")]
    raw = _get(srv, "/raw")
    assert raw.read() == b"\x00\xffraw" and raw.getheader("Content-Length") == "5"
    api = _get(srv, "/v1/messages")  # unsigned: the API's own 401, not the inbox
    assert api.status == 401 and api.getheader("Content-Type") == "application/json"
    assert len(pages.calls) == 2


def test_without_an_inbox_other_paths_are_a_json_404(server: Any) -> None:
    srv, _, app = server
    app.inbox = None
    resp = _get(srv, "/")
    assert resp.status == 404 and b'"not_found"' in resp.read()


def test_a_stream_is_sent_chunk_by_chunk_and_the_connection_is_reused(server: Any) -> None:
    srv, _, _ = server
    conn = http.client.HTTPConnection("127.0.0.1", srv.server_address[1], timeout=30)
    conn.request("GET", "/events?n=3")
    resp = conn.getresponse()
    assert resp.getheader("Content-Type") == "text/event-stream"
    assert resp.getheader("Transfer-Encoding") == "chunked"
    assert resp.read() == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"
    conn.request("GET", "/page")  # the same connection, after the stream ended
    assert conn.getresponse().read() == "<p>héllo</p>".encode()


def test_a_client_that_leaves_ends_the_stream_and_api_requests_go_on(server: Any) -> None:
    srv, pages, _ = server
    port = srv.server_address[1]
    socks = []
    for _ in range(6):  # more open event streams than worker threads (2)
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        sock.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200 ")
        socks.append(sock)
    started = time.monotonic()
    for _ in range(5):  # the API still answers: streams hold no worker thread
        assert _get(srv, "/v1/messages").status == 401
    assert time.monotonic() - started < 5
    for sock in socks:
        sock.close()
    assert pages.stream_closed.wait(10), "the stream's iterator was not closed"


def test_requests_in_hand_are_counted_for_the_worker_to_give_way_and_streams_are_not(
    server: Any,
) -> None:
    srv, pages, app = server
    activity = app.activity
    done: list[int] = []
    slow = threading.Thread(target=lambda: done.append(_get(srv, "/slow").status))
    slow.start()
    assert pages.entered.wait(30)
    assert activity.quiet_for() == 0.0  # a request in hand: the worker waits (worker.py)
    pages.release.set()
    slow.join(30)
    assert done == [200]
    deadline = time.monotonic() + 30
    while activity.quiet_for() == 0.0:  # the count is back to none once it is answered
        assert time.monotonic() < deadline
        time.sleep(0.01)
    # an open event stream is not a request in hand: it would hold deliveries back for ever
    sock = socket.create_connection(("127.0.0.1", srv.server_address[1]), timeout=30)
    try:
        sock.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200 ")
        time.sleep(0.05)
        assert activity.quiet_for() > 0.0
    finally:
        sock.close()
