"""Small loopback servers for the transport suite: an Outkit-like API that can misbehave
(trickle, huge answers, closed keep-alive connections, redirects), a CONNECT proxy, and a
private CA made for the test. Nothing here listens beyond 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import ssl
import subprocess
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

PROBE_ID = "00000000-0000-0000-0000-000000000000"  # keys test asks for it: answered 404
API_HOST = "api.outkit.test"  # a name only the test proxy knows (RFC 6761 .test)


def message(message_id: str = "m-1") -> dict[str, Any]:
    return {"id": message_id, "status": "delivered", "done": True, "type": "email",
            "to": "a@example.com"}  # fmt: skip


@dataclass
class PrivateCA:
    """A CA made for the test run and a server certificate it signed (localhost,
    127.0.0.1 and API_HOST), plus a directory of hashed CA certificates (SSL_CERT_DIR)."""

    ca_cert: Path
    server_cert: Path
    server_key: Path
    hashed_dir: Path

    def server_context(self, *, max_version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.server_cert, self.server_key)
        if max_version is not None:
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
            ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
            with warnings.catch_warnings():  # TLS 1.1 is deprecated: that is the point
                warnings.simplefilter("ignore", DeprecationWarning)
                ctx.maximum_version = max_version
        return ctx


def make_private_ca(d: Path) -> PrivateCA:
    def openssl(*args: str) -> str:
        return subprocess.run(["openssl", *args], check=True, capture_output=True,
                              text=True).stdout  # fmt: skip

    ca_key, ca_crt = d / "ca.key", d / "ca.pem"
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
            "/CN=outkit test CA", "-keyout", str(ca_key), "-out", str(ca_crt),
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    key, csr, crt = d / "server.key", d / "server.csr", d / "server.pem"
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
            "-keyout", str(key), "-out", str(csr))  # fmt: skip
    ext = d / "san.ext"
    ext.write_text(f"subjectAltName=DNS:localhost,DNS:{API_HOST},IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key),
            "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(crt))  # fmt: skip
    hashed = d / "certs"
    hashed.mkdir()
    digest = openssl("x509", "-hash", "-noout", "-in", str(ca_crt)).strip()
    (hashed / f"{digest}.0").write_bytes(ca_crt.read_bytes())
    return PrivateCA(ca_crt, crt, key, hashed)


# --------------------------------------------------------------------- serving a handler


class QuietServer(ThreadingHTTPServer):
    """A threading HTTP server for tests: daemon threads, none waited for on close, and no
    traceback for a client that went away (CliRunner swaps sys.stderr, so one would land in
    the stderr a test checks)."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


class QuietHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 (keep-alive) request handler that logs nothing, with the helpers every
    test server here needs."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def read_body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def record(self, body: bytes) -> dict[str, Any]:
        """The request as tests look at it: method, path, headers, body."""
        return {"method": self.command, "path": self.path, "headers": dict(self.headers),
                "body": body}  # fmt: skip

    def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        """Answer `payload` (JSON-encoded unless bytes) with its Content-Length."""
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response_only(status)
        for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


@contextlib.contextmanager
def serving(
    handler: type[BaseHTTPRequestHandler], *, tls: ssl.SSLContext | None = None
) -> Iterator[str]:
    """Serve `handler` on a free port of 127.0.0.1 from a daemon thread until the block
    ends. Yields the origin: http://127.0.0.1:PORT, or https://localhost:PORT with `tls`
    (the name the test certificates carry)."""
    server = QuietServer(("127.0.0.1", 0), handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    scheme, host = ("https", "localhost") if tls is not None else ("http", "127.0.0.1")
    try:
        yield f"{scheme}://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# --------------------------------------------------------------------- the API server


@dataclass
class Seen:
    requests: list[dict[str, Any]] = field(default_factory=list)
    connections: int = 0
    dropped: int = 0


@contextlib.contextmanager
def api_server(
    mode: str = "ok",
    *,
    tls: ssl.SSLContext | None = None,
    location: str = "",
    drop_posts: int = 0,
    retry_after: str = "100",
) -> Iterator[tuple[str, Seen]]:
    """An API answering as Outkit does, except as ``mode`` says:

    ok: well-behaved, keep-alive; close: closes the connection after every answer without
    saying so; trickle: the answer's body one byte a second; huge: a 400 MB body with its
    Content-Length; huge-stream: an endless body without a length; redirect: 307 to
    ``location``; html: a 403 web page (a proxy's, a web server's). The hostile ones, each
    taking a minute or more to answer (or never): trickle-head: the status line and headers
    one byte a second; trickle-chunked: a chunked body, one one-byte chunk a second; silent:
    reads the request, never answers; mute: reads nothing, writes nothing (a TLS handshake
    that never completes); trickle-handshake: the start of a TLS record, then one byte a
    second; slow-read: reads the request body one byte a second, then answers; retry-after:
    every answer a 503 with ``Retry-After: {retry_after}``. The first ``drop_posts`` POSTs
    are read and their connections closed with no answer, as if the server went away before
    taking them (they are counted in ``Seen.dropped``, not in ``Seen.requests``). Yields
    (base URL, what it saw).
    """
    seen = Seen()
    stop = threading.Event()  # ends the hostile modes' waits when the server shuts down

    def trickle(wfile: Any, raw: bytes) -> None:
        for i in range(len(raw)):
            if stop.wait(1):
                return
            wfile.write(raw[i : i + 1])

    class Handler(QuietHandler):
        def setup(self) -> None:
            super().setup()
            seen.connections += 1

        def handle(self) -> None:
            if mode == "mute":
                stop.wait(120)
            elif mode == "trickle-handshake":
                # a TLS handshake record's header (RFC 8446 5.1), then its body trickled
                with contextlib.suppress(OSError):
                    trickle(self.wfile, b"\x16\x03\x03\x40\x00" + b"\x02" * 120)
            else:
                super().handle()

        def _any(self) -> None:
            if mode == "slow-read":
                length = int(self.headers.get("Content-Length") or 0)
                body = b""
                while len(body) < length and not stop.wait(1):
                    body += self.rfile.read(1)
            else:
                body = self.read_body()
            if self.command == "POST" and seen.dropped < drop_posts:
                seen.dropped += 1
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            seen.requests.append(self.record(body))
            try:
                self._answer()
            except OSError:
                self.close_connection = True

        def _answer(self) -> None:
            if mode == "silent":
                stop.wait(120)
                self.close_connection = True
                return
            if mode == "retry-after":
                self.send_response_only(503)
                self.send_header("Retry-After", retry_after)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if mode == "html":
                page = b"<!doctype html><title>Forbidden</title><h1>Forbidden</h1>"
                self.send_response_only(403)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)
                return
            if mode == "redirect":
                self.send_response_only(307)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if mode == "huge":
                self.send_response_only(200)
                self.send_header("Content-Length", str(400 * 1024 * 1024))
                self.end_headers()
                self._stream(400 * 1024 * 1024)
                return
            if mode == "huge-stream":
                self.send_response_only(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.close_connection = True
                self._stream(10 * 1024 * 1024 * 1024)
                return
            status, payload = self._route()
            raw = json.dumps(payload).encode()
            if mode == "trickle-head":
                head = (f"HTTP/1.1 {status} OK\r\nContent-Type: application/json\r\n"
                        f"Content-Length: {len(raw)}\r\n\r\n")  # fmt: skip
                trickle(self.wfile, head.encode())
                self.wfile.write(raw)
                return
            if mode == "trickle-chunked":
                self.send_response_only(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for i in range(len(raw)):
                    if stop.wait(1):
                        return
                    self.wfile.write(b"1\r\n" + raw[i : i + 1] + b"\r\n")
                self.wfile.write(b"0\r\n\r\n")
                return
            self.send_response_only(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            if mode == "trickle":
                for i in range(len(raw)):
                    self.wfile.write(raw[i : i + 1])
                    self.wfile.flush()
                    time.sleep(1)
                return
            self.wfile.write(raw)
            if mode == "close":
                # the FIN right after the answer, as a server process sends it: the client
                # may still race it (tests/test_transport.py says what must hold then)
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_WR)
                self.close_connection = True

        def _stream(self, total: int) -> None:
            block = b" " * 65536
            sent = 0
            while sent < total:
                self.wfile.write(block)
                sent += len(block)

        def _route(self) -> tuple[int, Any]:
            path = self.path.split("?", 1)[0]
            if self.command == "POST":
                return 200, {"data": message(f"m-{len(seen.requests)}")}
            if path.endswith("/messages"):
                return 200, {"data": []}
            if path.endswith(PROBE_ID):
                return 404, {"error": {"message": "no such message", "code": "not_found"}}
            return 200, {"data": message(path.rsplit("/", 1)[1])}

        do_GET = do_POST = _any

    with serving(Handler, tls=tls) as origin:
        try:
            yield f"{origin}/v1", seen
        finally:
            stop.set()


# --------------------------------------------------------------------- a CONNECT proxy


@contextlib.contextmanager
def connect_proxy(upstream_port: int, *, trickle: bool = False) -> Iterator[tuple[str, list[str]]]:
    """An HTTP proxy that tunnels every CONNECT to 127.0.0.1:``upstream_port`` whatever
    host it names (so a made-up API host works), recording the CONNECT targets and
    Proxy-Authorization headers. Yields (proxy URL, ["CONNECT target | auth", ...]).
    With ``trickle``, its answer to CONNECT comes one byte a second (a minute in all)."""
    log: list[str] = []
    stop = threading.Event()

    class Handler(QuietHandler):
        def do_CONNECT(self) -> None:
            log.append(f"{self.path} | {self.headers.get('Proxy-Authorization', '')}")
            if trickle:
                answer = b"HTTP/1.1 200 Connection established\r\nVia: 1.1 slow\r\n\r\n"
                with contextlib.suppress(OSError):
                    for i in range(len(answer)):
                        if stop.wait(1):
                            break
                        self.wfile.write(answer[i : i + 1])
                self.close_connection = True
                return
            upstream = socket.create_connection(("127.0.0.1", upstream_port))
            self.send_response_only(200, "Connection established")
            self.end_headers()
            self.wfile.flush()
            pair = [self.connection, upstream]
            try:
                while True:
                    readable, _, _ = select.select(pair, [], [], 30)
                    if not readable:
                        break
                    for s in readable:
                        data = s.recv(65536)
                        if not data:
                            return
                        (upstream if s is self.connection else self.connection).sendall(data)
            except OSError:
                pass
            finally:
                upstream.close()
                self.close_connection = True

    with serving(Handler) as origin:
        try:
            yield origin, log
        finally:
            stop.set()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
