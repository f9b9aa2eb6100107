"""The HTTP layer: stdlib ThreadingHTTPServer, HTTP/1.1 keep-alive, JSON for everything.

Kept lean because it is on every request: the body is read by Content-Length (or chunked),
the answer goes out as one write with prebuilt headers, and one log line per request goes
to stderr (method, path, status, milliseconds; never a header value).
"""

from __future__ import annotations

import contextlib
import re
import sys
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from outkit_cli.sandbox.app import MAX_BODY, Response, SandboxApp, error_body

REASONS = {
    200: "OK", 303: "See Other", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed", 413: "Payload Too Large", 414: "URI Too Long",
    422: "Unprocessable Entity", 429: "Too Many Requests", 431: "Request Header Fields Too Large",
    500: "Internal Server Error", 501: "Not Implemented", 503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}  # fmt: skip

_date_cache: list[Any] = [0, ""]


def _http_date(clock: float) -> str:
    now = int(clock)
    if _date_cache[0] != now:
        _date_cache[0], _date_cache[1] = now, formatdate(now, usegmt=True)
    return _date_cache[1]


MAX_LINE = 65536
MAX_HEADERS = 100
# A chunk size is hex digits only: int(x, 16) would also take '-1', '+5', '0x5' and '1_0',
# and read(-1) reads the stream to its end, past the body size limit.
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]+")


class Headers(dict):  # type: ignore[type-arg]
    """Request headers by lower-cased name; `get` takes any case."""

    def get(self, name: str, default: Any = None) -> Any:
        return dict.get(self, name.lower(), default)


class BodyTooLarge(Exception):
    pass


class BadRequest(Exception):
    pass


def _is_api(target: str) -> bool:
    path = target.partition("?")[0]
    if path.startswith(("http://", "https://")):  # absolute-form request target
        path = "/" + path.split("/", 3)[-1] if path.count("/") >= 3 else "/"
    return path == "/v1" or path.startswith("/v1/")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "outkit-sandbox"
    # one write per response already; no Nagle delay on keep-alive connections
    disable_nagle_algorithm = True
    timeout = 120  # seconds an idle keep-alive connection (and its thread) is kept
    server: SandboxServer

    def handle_one_request(self) -> None:
        """Parse one request and answer it.

        Replaces http.server's parser (an email.parser per request, the biggest cost on
        the request path) with a plain line loop; everything else stays stdlib.
        """
        self.command, self.path = "", ""  # not a previous request's, in error lines
        try:
            line = self.rfile.readline(MAX_LINE + 1)
            if not line:
                self.close_connection = True
                return
            self.raw_requestline = line
            if len(line) > MAX_LINE:
                self.request_version = "HTTP/1.1"
                self.send_error(414, "request line too long")
                return
            parts = line.decode("latin-1").split()
            if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
                self.request_version = "HTTP/1.1"
                self.send_error(400, "malformed request line")
                return
            self.command, self.path, self.request_version = parts
            self.requestline = " ".join(parts)
            headers = Headers()
            count = 0
            while True:
                raw = self.rfile.readline(MAX_LINE + 1)
                if raw in (b"\r\n", b"\n", b""):
                    break
                count += 1
                name, sep, value = raw.decode("latin-1").partition(":")
                if not sep or len(raw) > MAX_LINE or count > MAX_HEADERS:
                    self.send_error(431 if sep else 400, "malformed or oversized headers")
                    return
                headers[name.strip().lower()] = value.strip()
            self.headers = headers  # type: ignore[assignment]
            connection = headers.get("connection", "").lower()
            if self.request_version == "HTTP/1.0":
                self.close_connection = connection != "keep-alive"
            else:
                self.close_connection = connection == "close"
            self._dispatch()
        except TimeoutError:
            self.close_connection = True

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        raw = self.headers.get("Content-Length")
        if raw is None:
            return b""
        # isascii: str.isdigit() also accepts '²' (latin-1 0xB2), which int() refuses
        if not (raw.isascii() and raw.isdigit()):
            raise BadRequest(f"invalid Content-Length: {raw[:40]!r}")
        length = int(raw)
        if length > MAX_BODY:
            raise BodyTooLarge(length)
        if self.headers.get("Expect", "").lower() == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # curl waits for it
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            # the client closed early: a partial body is never taken for a whole one
            raise BadRequest(f"the body ended after {len(body)} of {length} bytes (Content-Length)")
        return body

    def _read_chunked(self) -> bytes:
        parts, total = [], 0
        while True:
            line = self.rfile.readline(1024).split(b";", 1)[0].strip()
            if not _CHUNK_SIZE.fullmatch(line):
                raise BadRequest("malformed chunked body")
            size = int(line, 16)
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            total += size
            if total > MAX_BODY:
                raise BodyTooLarge(total)
            chunk = self.rfile.read(size)
            if len(chunk) < size:
                raise BadRequest("the chunked body ended inside a chunk")
            parts.append(chunk)
            self.rfile.readline(8)

    def _dispatch(self) -> None:
        start = time.perf_counter()
        app = self.server.app
        try:
            body = self._read_body()
        except BodyTooLarge:
            self.close_connection = True  # the body is left unread
            resp = Response(413, error_body("payload_too_large", "the body is larger than "
                                            "10 MiB"), {})  # fmt: skip
        except BadRequest as exc:
            self.close_connection = True
            resp = Response(400, error_body("bad_request", str(exc)), {})
        else:
            try:
                if app.inbox is not None and not _is_api(self.path):
                    resp = app.inbox.handle(self.command, self.path, self.headers, body)
                else:
                    resp = app.handle(self.command, self.path, self.headers, body)
            except Exception as exc:  # a bug in the sandbox: JSON 500, logged, no traceback
                app.log(f"internal error: {type(exc).__name__}: {exc}")
                resp = Response(500, error_body("internal_error", "internal error in the "
                                                "sandbox"), {})  # fmt: skip
        app.faults.delay()
        self._write(resp)
        elapsed = (time.perf_counter() - start) * 1000
        app.log(f"{self.command} {self.path.partition('?')[0]} {resp.status} {elapsed:.1f}ms")

    def _write(self, resp: Response) -> None:
        payload = resp.body.encode("utf-8") if isinstance(resp.body, str) else resp.body
        head = [
            f"HTTP/1.1 {resp.status} {REASONS.get(resp.status, 'Error')}",
            f"Date: {_http_date(self.server.app.faults.now())}",
            "Server: outkit-sandbox",
        ]
        if "Content-Type" not in resp.headers:
            head.append("Content-Type: application/json")
        if resp.stream is None:
            head.append(f"Content-Length: {len(payload)}")
        else:
            self.close_connection = True  # the stream ends when the connection does
        head.extend(f"{k}: {v}" for k, v in resp.headers.items())
        if self.close_connection:
            head.append("Connection: close")
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        if self.command != "HEAD":
            data += payload
        self.wfile.write(data)
        if resp.stream is not None and self.command != "HEAD":
            self._send_stream(resp.stream)

    def _send_stream(self, stream: Any) -> None:
        # Interim: this threaded server gives a stream its own thread and event loop until
        # it ends or the client leaves.
        import asyncio

        async def pump() -> None:
            async for chunk in stream():
                self.wfile.write(chunk)
                self.wfile.flush()

        with contextlib.suppress(ConnectionError, TimeoutError):
            asyncio.run(pump())

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # http.server's own errors (bad request line, oversized headers...) as JSON too
        self.close_connection = True
        text = message or REASONS.get(code, "error")
        self._write(Response(code, error_body("bad_request", text), {}))
        path = self.path or "-"
        self.server.app.log(f"{self.command or '-'} {path.partition('?')[0][:200]} {code} {text}")

    def log_message(self, format: str, *args: Any) -> None:
        pass  # our own log line is written in _dispatch


class SandboxServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], app: SandboxApp) -> None:
        self.app = app
        super().__init__(address, Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a client that vanished mid-request is routine, not worth a traceback
        exc = sys.exc_info()[1]
        if not isinstance(exc, (ConnectionError, TimeoutError)):
            self.app.log(f"connection error: {type(exc).__name__}: {exc}")
