"""The sandbox's HTTP front end: asyncio streams, the h11 HTTP/1.1 parser, bounded in
connections, in time and in size.

Contract with the applications behind it (the API and the browser inbox):

- A request whose head and body were read in full is routed by path: `/v1` and `/v1/...`
  to `SandboxApp.handle`, every other path to `app.inbox.handle` when the inbox is set up
  (a JSON 404 otherwise). Both have the signature
  ``handle(method: str, target: str, headers: Mapping[str, str], body: bytes) -> Response``;
  `target` is the request target as sent (latin-1 text), `headers` a mapping whose `.get`
  takes any case (the last of repeated fields wins), `body` the whole body (chunked
  bodies are de-chunked). They are synchronous and run in a bounded thread pool
  (`workers` threads), never on the event loop, so a slow one holds up no other connection.
  When the app has an `activity` (`outkit_cli.sandbox.worker.Activity`), each call is
  counted in it from the moment it is handed to the pool until it returns (streams are
  not counted), so that the app's background work can give way to requests.
- The `Response` (see `outkit_cli.sandbox.app.Response`) goes out with Date, Server,
  Content-Type (application/json unless `headers` names one) and Content-Length.
  When `Response.stream` is set, the front end sends the head without Content-Length
  (chunked for HTTP/1.1, close-delimited for HTTP/1.0), then each bytes chunk of the async
  iterator `stream()` as soon as it comes, on the event loop, until the iterator ends or the
  client goes away (the iterator is then cancelled and closed). A stream holds a connection
  but no worker thread, so open server-sent-event pages do not slow the API.

Limits (each answered or logged, never a traceback):

- At most `max_connections` open connections (by default what the descriptor limit
  allows, less a reserve for files and SQLite). A connection over the cap is still
  accepted: the oldest connection that is idle or still sending its request head is closed
  to make room, so idle keep-alive connections and slowloris clients cannot lock out a new
  client. When every connection is busy with a request, the new one gets a 503.
- The request head must arrive within `head_timeout` seconds of its first byte (or of the
  connection's start), the body within `body_timeout` seconds of the head; a keep-alive
  connection idle for `idle_timeout` seconds is closed. Bytes dribbled slowly do not
  extend any of these deadlines.
- A head over 64 KiB: 431; a body over `MAX_BODY`: 413 (a chunk size over it is refused
  as soon as it is read; one that does not fit in 64 bits is malformed: 400); malformed
  HTTP: 400 (as h11 judges it, RFC 9112), each with a JSON error body and
  `Connection: close`.
- Request bodies being read or handled hold at most `body_budget` bytes (`BODY_BUDGET`,
  64 MiB, by default) across all connections: a declared Content-Length is counted when
  the head arrives, a chunked body as its bytes arrive. A request that would take the total
  over it gets a 503 `server_busy` (with `Retry-After: 1`) and its connection is closed;
  the bytes are released when the request is answered or its connection closes, however.
  Without it, 200 connections each sending a body just under `MAX_BODY` held 2 GB.
  Room is given to an API body only once its head passed every check that needs no body
  (`Authenticator.precheck`: a known key and passphrase, the secret, or a fresh timestamp and
  a signature header), else a 401 is sent without reading it; bodies for other paths (the
  inbox's forms) are at most `OTHER_MAX_BODY` bytes from a budget of their own
  (`OTHER_BODY_BUDGET`). So connections without credentials cannot hold the API's budget.
- Connections are accepted `ACCEPT_PER_PASS` at a time, with descriptors kept free for
  those not yet made room for (`ACCEPT_SLACK`), so a rush of connections does not run the
  server out of descriptors. If it runs out anyway (EMFILE), asyncio pauses accepting for a
  second instead of spinning, and the log gets one line, not a traceback (`_loop_error`).

One log line per request goes to the app's log: method, path (control characters escaped,
see `outkit_cli.terminal.escape_controls`), status, milliseconds; never a header value.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import errno
import re
import resource
import socket
import sys
import threading
import time
from collections.abc import Callable
from email.utils import formatdate
from typing import Any

import h11

from outkit_cli.sandbox.app import MAX_BODY, Response, SandboxApp, error_body
from outkit_cli.sandbox.errors import ApiError
from outkit_cli.terminal import escape_controls

MAX_HEAD = 64 * 1024
READ_SIZE = 65536
HEAD_TIMEOUT = 10.0
BODY_TIMEOUT = 60.0
IDLE_TIMEOUT = 120.0
WORKERS = 8
# bytes of request bodies held at once, over all connections (see the module docstring)
BODY_BUDGET = 64 * 1024 * 1024
# paths outside /v1 (the inbox) take small forms only, from a budget of their own: they are
# read before anyone is known, so they must not take room from the API's bodies
OTHER_MAX_BODY = 64 * 1024
OTHER_BODY_BUDGET = 4 * 1024 * 1024
# a chunk size this large does not fit in 64 bits: malformed, not merely too large
CHUNK_SIZE_OVERFLOW = 1 << 64
# descriptors kept for everything that is not a client connection: SQLite (database, WAL,
# shared memory, per pooled connection), outbox files, templates, the log, the listener
FD_RESERVE = 64
LISTEN_BACKLOG = 1024
# Connections asyncio accepts in one pass over the listener (its `backlog` argument), and
# the descriptors kept free for those accepted before the connections they make room for
# are closed (that takes about three passes of the event loop: the accept's task, the
# connection's task, the close). asyncio's default, 100 a pass with a reserve of 64, ran
# out of descriptors (EMFILE): a traceback on stderr for each failed accept, and no accept
# for 1 s each time (attacker trial: 600 silent connections under a 256-descriptor limit
# kept a GET waiting 7.8 s). The kernel's queue stays LISTEN_BACKLOG long.
ACCEPT_PER_PASS = 8
ACCEPT_SLACK = 8 * ACCEPT_PER_PASS
SWITCH_INTERVAL = 0.0005  # seconds; see serve_forever

REASONS = {
    100: b"Continue", 200: b"OK", 204: b"No Content", 301: b"Moved Permanently",
    302: b"Found", 303: b"See Other", 304: b"Not Modified", 400: b"Bad Request",
    401: b"Unauthorized", 403: b"Forbidden", 404: b"Not Found",
    405: b"Method Not Allowed", 408: b"Request Timeout", 413: b"Payload Too Large",
    414: b"URI Too Long", 422: b"Unprocessable Entity", 429: b"Too Many Requests",
    431: b"Request Header Fields Too Large", 500: b"Internal Server Error",
    501: b"Not Implemented", 503: b"Service Unavailable", 505: b"HTTP Version Not Supported",
    507: b"Insufficient Storage",
}  # fmt: skip


class Headers(dict[str, str]):
    """Request headers by lower-cased name; `get` takes any case."""

    def get(self, name: str, default: Any = None) -> Any:
        return dict.get(self, name.lower(), default)


def is_api(target: str) -> bool:
    """True when the request target is for the API (`/v1`, `/v1/...`), in origin form or
    absolute form (RFC 9112 section 3.2)."""
    path = target.partition("?")[0]
    if path.startswith(("http://", "https://")):
        parts = path.split("/", 3)
        path = "/" + parts[3] if len(parts) > 3 else "/"
    return path == "/v1" or path.startswith("/v1/")


def default_max_connections() -> int:
    """Connections the descriptor limit (RLIMIT_NOFILE) leaves room for, less a reserve for
    files (FD_RESERVE) and for connections accepted but not yet made room for
    (ACCEPT_SLACK), or a tenth of the limit if more."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 65536
    return max(8, soft - max(FD_RESERVE + ACCEPT_SLACK, soft // 10))


def raise_descriptor_limit() -> None:
    """Raise the soft descriptor limit to the hard one (capped at 65536), as servers do:
    the default soft limit (often 1024) is what a few idle clients would otherwise reach."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft != resource.RLIM_INFINITY and soft < want:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port); OSError when it cannot bind. `host` "" binds
    every IPv4 interface; an IPv6 address (``::1``, ``::``) binds IPv6."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                               flags=socket.AI_PASSIVE)  # fmt: skip
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class _Conn:
    """One client connection's state as the limits see it."""

    __slots__ = ("busy", "head", "idle", "other", "reserved", "timer", "writer")

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        # the first bytes of the request head as received, kept to tell an over-long request
        # line (414) or size (413) from other errors h11 reports
        self.head = bytearray()
        self.busy = False  # a request is being handled or streamed: not to be evicted
        self.idle = False  # between requests of a keep-alive connection
        self.reserved = 0  # bytes of the body budget this connection's request holds
        self.other = False  # its request is not for the API: the other paths' budget
        self.timer: asyncio.TimerHandle | None = None


class SandboxServer:
    """The front end for one SandboxApp on a bound socket. `serve_forever` runs the event
    loop in the calling thread until `shutdown` (from any thread)."""

    def __init__(
        self,
        address: tuple[str, int],
        app: SandboxApp,
        *,
        max_connections: int | None = None,
        workers: int = WORKERS,
        head_timeout: float = HEAD_TIMEOUT,
        body_timeout: float = BODY_TIMEOUT,
        idle_timeout: float = IDLE_TIMEOUT,
        body_budget: int = BODY_BUDGET,
    ) -> None:
        self.app = app
        self.body_budget = body_budget
        self._buffered = 0  # bytes reserved by all connections' API request bodies
        self._other_buffered = 0  # the same for other paths (the inbox's forms)
        self.socket = bind(*address)
        self.server_address: tuple[Any, ...] = self.socket.getsockname()
        self.max_connections = max_connections or default_max_connections()
        self.head_timeout = head_timeout
        self.body_timeout = body_timeout
        self.idle_timeout = idle_timeout
        self._pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="http")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._done = threading.Event()
        self._stop_requested = threading.Event()
        # connections in order of their last change to idle/head-reading: the eviction order
        self._conns: collections.OrderedDict[int, _Conn] = collections.OrderedDict()
        self._date = (0, b"")

    # -- running -----------------------------------------------------------------------------
    def serve_forever(self) -> None:
        # The event loop's thread shares the GIL with the worker threads: with Python's
        # default 5 ms switch interval, a worker busy with a request keeps the loop from
        # reading the next one for up to 5 ms (the convoy effect); 0.5 ms doubled the
        # sandbox's request rate (bench/bench_sandbox.py).
        sys.setswitchinterval(SWITCH_INTERVAL)
        if not self._stop_requested.is_set():
            asyncio.run(self._serve())
        self._done.set()

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop serving (thread-safe, also before `serve_forever` has got going); waits up
        to `timeout` seconds for a running `serve_forever` to return."""
        self._stop_requested.set()
        loop, stop = self._loop, self._stop
        if loop is None or stop is None:
            return  # not serving yet: serve_forever will see the request and return
        if not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop has just finished
                loop.call_soon_threadsafe(stop.set)
        self._done.wait(timeout)

    def server_close(self) -> None:
        self.socket.close()
        self._pool.shutdown(wait=True, cancel_futures=True)

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        if self._stop_requested.is_set():  # shutdown() came before the loop was known
            return
        self._loop.set_exception_handler(self._loop_error)
        server = await asyncio.start_server(self._connection, sock=self.socket,
                                            limit=READ_SIZE, backlog=ACCEPT_PER_PASS)  # fmt: skip
        # start_server listened again with its backlog: give the kernel's queue its length
        self.socket.listen(LISTEN_BACKLOG)
        try:
            await self._stop.wait()
        finally:
            server.close()
            for conn in list(self._conns.values()):
                conn.writer.transport.abort()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 5)

    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """asyncio's errors as one log line each, never a traceback on the operator's
        terminal: out of descriptors while accepting (asyncio then pauses accepting for
        1 s), or anything a callback raised."""
        exc = context.get("exception")
        what = context.get("message") or "event loop error"
        if isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE):
            line = (f"out of file descriptors ({exc.strerror}): not accepting connections "
                    "for 1 s; raise `ulimit -n` for more clients")  # fmt: skip
        elif exc is not None:
            line = f"{what}: {type(exc).__name__}: {exc}"
        else:
            line = str(what)
        self.app.log(escape_controls(line))

    # -- limits ------------------------------------------------------------------------------
    def _arm(self, conn: _Conn, seconds: float) -> None:
        """(Re)start the connection's one deadline: when it passes, the connection is dropped."""
        if conn.timer is not None:
            conn.timer.cancel()
        assert self._loop is not None
        conn.timer = self._loop.call_later(seconds, conn.writer.transport.abort)

    def _disarm(self, conn: _Conn) -> None:
        if conn.timer is not None:
            conn.timer.cancel()
            conn.timer = None

    def _make_room(self) -> bool:
        """Close the oldest idle or head-reading connection when at the cap; False when every
        connection is busy with a request."""
        if len(self._conns) < self.max_connections:
            return True
        for key, conn in self._conns.items():
            if not conn.busy:
                del self._conns[key]
                conn.writer.transport.abort()
                return True
        return False

    def _admit_body(self, conn: _Conn, target: str, headers: Headers) -> None:
        """Before a body is given room: an API request must pass every check of its head
        (a known key and passphrase, the secret or a fresh timestamp and a signature
        header: `Authenticator.precheck`), else a 401 and nothing is read; other paths
        (the inbox's forms) get at most OTHER_MAX_BODY bytes from a budget of their own.
        Strangers cannot hold the API's body budget (attacker trial 1, finding 11)."""
        if is_api(target):
            try:
                self.app.auth.precheck(headers)
            except ApiError as exc:
                raise _Refused(Response(exc.status, error_body(exc.code, exc.message),
                                        exc.headers)) from None  # fmt: skip
            return
        conn.other = True  # _reserve holds it to OTHER_MAX_BODY

    def _reserve(self, conn: _Conn, size: int) -> None:
        """Count `size` more bytes of `conn`'s request body against the body budget (the
        API's, or the one of other paths); raises _Refused (503 server_busy) when they do
        not fit, 413 past OTHER_MAX_BODY on other paths."""
        if conn.other:
            if conn.reserved + size > OTHER_MAX_BODY:
                raise _Refused(_error(413, "payload_too_large", "the body is larger than "
                                      f"{OTHER_MAX_BODY // 1024} KiB"))  # fmt: skip
            if self._other_buffered + size > OTHER_BODY_BUDGET:
                raise _Refused(_busy())
            self._other_buffered += size
        else:
            if self._buffered + size > self.body_budget:
                raise _Refused(_busy())
            self._buffered += size
        conn.reserved += size

    def _release(self, conn: _Conn) -> None:
        if conn.other:
            self._other_buffered -= conn.reserved
        else:
            self._buffered -= conn.reserved
        conn.reserved = 0
        conn.other = False

    # -- one connection --------------------------------------------------------------------
    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):  # one write per answer: no Nagle delay
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = id(writer)
        if not self._make_room():
            await self._refuse(writer)
            return
        conn = _Conn(writer)
        self._conns[key] = conn
        h11conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        try:
            self._arm(conn, self.head_timeout)
            while await self._one_request(conn, h11conn, reader, writer):
                h11conn.start_next_cycle()
                conn.busy, conn.idle = False, True
                self._conns.pop(key, None)
                self._conns[key] = conn  # now the newest idle connection
                self._arm(conn, self.idle_timeout)
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass  # the client went away, or a deadline dropped it: nothing to answer
        except Exception as exc:  # a bug here: logged in one line, the connection dropped
            self.app.log(escape_controls(f"connection error: {type(exc).__name__}: {exc}"))
            writer.transport.abort()
        finally:
            self._release(conn)
            self._disarm(conn)
            self._conns.pop(key, None)
            writer.close()  # after what was written is sent (a no-op once aborted)

    async def _refuse(self, writer: asyncio.StreamWriter) -> None:
        body = error_body("unavailable", "the sandbox has too many open connections; "
                          "try again in a moment").encode()  # fmt: skip
        head = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                b"Retry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n")  # fmt: skip
        with contextlib.suppress(OSError):
            writer.write(head % len(body) + body)
        writer.close()
        self.app.log("- - 503 too many open connections")

    async def _next_event(
        self,
        conn: _Conn,
        h11conn: h11.Connection,
        reader: asyncio.StreamReader,
        waiting: Callable[[], None] | None = None,
    ) -> Any:
        """The next h11 event, reading as needed; `waiting` is called before each read."""
        while True:
            event = h11conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            if waiting is not None:
                waiting()
            data = await reader.read(READ_SIZE)
            if conn.idle and data:
                # the first byte of the next request: from now on the head has its deadline
                conn.idle = False
                self._arm(conn, self.head_timeout)
            if h11conn.their_state is h11.IDLE and len(conn.head) <= MAX_HEAD:
                conn.head += data[: MAX_HEAD + 1 - len(conn.head)]
            h11conn.receive_data(data)

    async def _one_request(
        self,
        conn: _Conn,
        h11conn: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        """Read, handle and answer one request. True when the connection may be reused."""
        try:
            return await self._one_request_held(conn, h11conn, reader, writer)
        finally:
            self._release(conn)  # the body is answered (or abandoned): its bytes are free

    async def _one_request_held(
        self,
        conn: _Conn,
        h11conn: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        start = time.perf_counter()
        method, target = "-", "-"
        resp: Response | None
        try:
            event = await self._next_event(conn, h11conn, reader)
            if isinstance(event, h11.ConnectionClosed):
                return False
            assert isinstance(event, h11.Request)
            start = time.perf_counter()  # the time logged is the server's, not idle time
            conn.busy = True
            method, target = event.method.decode("latin-1"), event.target.decode("latin-1")
            _check_head(event, conn.head)
            conn.head.clear()
            headers = Headers()
            for name, value in event.headers:
                headers[name.decode("latin-1")] = value.decode("latin-1")
            self._arm(conn, self.body_timeout)
            body = await self._read_body(conn, h11conn, reader, writer, headers, target)
            self._disarm(conn)
        except h11.RemoteProtocolError as exc:
            resp = _protocol_error(exc, conn.head)
        except _Refused as exc:
            resp = exc.response
        else:
            resp = None
        if resp is not None:
            await self._send(h11conn, writer, resp, method, close=True)
            self._log(method, target, resp.status, start)
            with contextlib.suppress(OSError):
                if writer.can_write_eof():
                    writer.write_eof()  # the answer is complete: the client may stop waiting
            await _linger(reader)
            return False

        assert self._loop is not None
        # the app's background work gives way while requests are in hand (worker.py)
        activity = getattr(self.app, "activity", None)
        if activity is not None:
            activity.begin()
        try:
            resp = await self._loop.run_in_executor(
                self._pool, self._call, method, target, headers, body
            )
        finally:
            if activity is not None:
                activity.end()
        if self.app.faults.latency_ms > 0:
            await asyncio.sleep(self.app.faults.latency_ms / 1000)
        try:
            await self._send(h11conn, writer, resp, method, close=False, reader=reader)
        finally:
            self._log(method, target, resp.status, start)
        return h11conn.our_state is h11.DONE and h11conn.their_state is h11.DONE

    async def _read_body(
        self,
        conn: _Conn,
        h11conn: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        headers: Headers,
        target: str,
    ) -> bytes:
        length = headers.get("content-length")
        if length is not None and length.isascii() and length.isdigit() and int(length) > MAX_BODY:
            raise _Refused(_too_large())
        if length != "0" and (length is not None or "transfer-encoding" in headers):
            self._admit_body(conn, target, headers)
        if length is not None and length.isascii() and length.isdigit():
            self._reserve(conn, int(length))  # before 100 Continue: refused unsent
        if h11conn.they_are_waiting_for_100_continue:
            # curl waits for it before sending a body
            writer.write(
                h11conn.send(
                    h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue")
                )
            )
        parts: list[bytes] = []
        total = 0

        def check_chunk_size() -> None:
            # h11 reads a chunk size of up to 20 hex digits and then waits for that many
            # bytes: a size over the limit is refused now, not after MAX_BODY bytes or the
            # body deadline
            pending = _pending_chunk(h11conn)
            # total counts the chunk's first bytes, which h11 has already handed out
            if total + pending >= CHUNK_SIZE_OVERFLOW:
                raise _Refused(_bad_chunk_size())
            if total + pending > MAX_BODY:
                raise _Refused(_too_large())

        while True:
            try:
                event = await self._next_event(conn, h11conn, reader, check_chunk_size)
            except h11.RemoteProtocolError as exc:
                raise _Refused(_body_error(exc, total, length)) from None
            if isinstance(event, h11.Data):
                total += len(event.data)
                if total > MAX_BODY:
                    raise _Refused(_too_large())
                if total > conn.reserved:  # chunked: counted as it arrives
                    self._reserve(conn, total - conn.reserved)
                parts.append(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return b"".join(parts)
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionResetError("the client closed the connection inside the body")

    def _call(self, method: str, target: str, headers: Headers, body: bytes) -> Response:
        """Run the application for one request (in a worker thread)."""
        app = self.app
        try:
            if is_api(target):
                return app.handle(method, target, headers, body)
            if headers.get("Outkit-Access-Key") is not None:
                # an API client pointed at the inbox's URL (no /v1): say so in JSON, which
                # it reads, rather than answer with an inbox page or its 403
                path = escape_controls(target.partition("?")[0][:200])
                return Response(404, error_body("not_found", (
                    f"no such endpoint: {path}; the API is under /v1 (/v1/messages): "
                    "the API URL ends in /v1"
                )), {})  # fmt: skip
            inbox = getattr(app, "inbox", None)  # the browser inbox (issue 16), once set up
            if inbox is not None:
                return inbox.handle(method, target, headers, body)
            path = escape_controls(target.partition("?")[0][:200])
            return Response(404, error_body("not_found", f"no such endpoint: {path}"), {})
        except Exception as exc:  # a bug in the sandbox: JSON 500, logged, no traceback
            app.log(escape_controls(f"internal error: {type(exc).__name__}: {exc}"))
            return Response(500, error_body("internal_error", "internal error in the sandbox"),
                            {})  # fmt: skip

    # -- answering ---------------------------------------------------------------------------
    def _http_date(self) -> bytes:
        now = int(self.app.faults.now())
        if self._date[0] != now:
            self._date = (now, formatdate(now, usegmt=True).encode())
        return self._date[1]

    async def _send(
        self,
        h11conn: h11.Connection,
        writer: asyncio.StreamWriter,
        resp: Response,
        method: str,
        *,
        close: bool,
        reader: asyncio.StreamReader | None = None,
    ) -> None:
        if h11conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return  # an answer is already under way: only closing is left
        body = resp.body.encode("utf-8") if isinstance(resp.body, str) else resp.body
        headers: list[tuple[bytes, bytes]] = [
            (b"date", self._http_date()),
            (b"server", b"outkit-sandbox"),
        ]
        if not any(k.lower() == "content-type" for k in resp.headers):
            headers.append((b"content-type", b"application/json"))
        if resp.stream is None:
            headers.append((b"content-length", str(len(body)).encode()))
        headers.extend((k.encode("latin-1"), v.encode("latin-1")) for k, v in resp.headers.items())
        if close:
            headers.append((b"connection", b"close"))
        try:
            data = h11conn.send(h11.Response(status_code=resp.status, headers=headers,
                                             reason=REASONS.get(resp.status, b"")))  # fmt: skip
        except h11.LocalProtocolError:
            # a request h11 could not frame (e.g. an unsupported HTTP version): plain close
            return
        if resp.stream is not None and method != "HEAD":
            writer.write(data or b"")
            if body:
                writer.write(h11conn.send(h11.Data(data=body)) or b"")
            await self._stream(h11conn, writer, resp, reader)
            return
        if body and method != "HEAD":
            data = (data or b"") + (h11conn.send(h11.Data(data=body)) or b"")
        data = (data or b"") + (h11conn.send(h11.EndOfMessage()) or b"")
        writer.write(data)
        await writer.drain()

    async def _stream(
        self,
        h11conn: h11.Connection,
        writer: asyncio.StreamWriter,
        resp: Response,
        reader: asyncio.StreamReader | None,
    ) -> None:
        assert resp.stream is not None
        iterator = resp.stream()

        async def pump() -> None:
            async for chunk in iterator:
                if chunk:
                    writer.write(h11conn.send(h11.Data(data=chunk)) or b"")
                    await writer.drain()

        async def gone() -> None:
            # the client's side of the connection: EOF (or a reset) means it left
            while reader is not None:
                data = await reader.read(READ_SIZE)
                if not data:
                    return
                h11conn.receive_data(data)  # pipelined: h11 keeps it for the next cycle
            await asyncio.Event().wait()

        tasks = [asyncio.ensure_future(pump()), asyncio.ensure_future(gone())]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            # both must have finished before anyone reads the connection again
            await asyncio.gather(*tasks, return_exceptions=True)
            closer = getattr(iterator, "aclose", None)
            if closer is not None:
                with contextlib.suppress(Exception):
                    await closer()
        if tasks[0] in done and tasks[0].exception() is None:
            writer.write(h11conn.send(h11.EndOfMessage()) or b"")
            await writer.drain()
        else:
            raise ConnectionResetError("the stream ended with the client gone")

    def _log(self, method: str, target: str, status: int, start: float) -> None:
        elapsed = (time.perf_counter() - start) * 1000
        path = target.partition("?")[0][:200] or "-"
        self.app.log(escape_controls(f"{method} {path} {status} {elapsed:.1f}ms"))


MAX_HEADER_FIELDS = 100
MAX_TARGET = 16 * 1024
_CONTENT_LENGTH = re.compile(rb"(?im)^content-length[ \t]*:[ \t]*([0-9]+)[ \t]*\r?$")
# h11 takes at most 20 hex digits in a chunk size and says so as "illegal chunk header: ...";
# 17 or more do not fit in 64 bits
_LONG_CHUNK_SIZE = re.compile(r"chunk header: bytearray\(b'[0-9A-Fa-f]{17,}\\r\\n'\)")


def _error(status: int, code: str, message: str) -> Response:
    return Response(status, error_body(code, message), {})


def _busy() -> Response:
    return Response(503, error_body("server_busy", "the sandbox holds too many request "
                    "bodies at once; retry in a moment"), {"Retry-After": "1"})  # fmt: skip


def _bad_chunk_size() -> Response:
    return _error(400, "bad_request", "malformed chunked body: the chunk size does not fit "
                  "in 64 bits (RFC 9112 section 7.1)")  # fmt: skip


def _pending_chunk(h11conn: h11.Connection) -> int:
    """Bytes h11 still expects in the chunk it is reading (0 outside a chunked body).
    h11 has no public accessor for it; without the attribute the early check is skipped
    and the MAX_BODY count still applies."""
    pending = getattr(getattr(h11conn, "_reader", None), "_bytes_in_chunk", 0)
    return pending if isinstance(pending, int) else 0


def _too_large() -> Response:
    return _error(413, "payload_too_large",
                  f"the body is larger than {MAX_BODY // (1024 * 1024)} MiB")  # fmt: skip


def _head_too_large(head: bytes | bytearray) -> Response | None:
    """414 or 431 when the head as received is over a limit (RFC 9112 section 3; RFC 6585
    section 5), else None."""
    line_end = head.find(b"\n")
    if line_end > MAX_TARGET or (line_end < 0 and len(head) > MAX_TARGET):
        return _error(414, "bad_request", f"the request line is longer than "
                      f"{MAX_TARGET // 1024} KiB")  # fmt: skip
    if len(head) > MAX_HEAD and b"\r\n\r\n" not in head[:MAX_HEAD]:
        return _error(431, "bad_request",
                      f"the request head is larger than {MAX_HEAD // 1024} KiB")  # fmt: skip
    return None


def _check_head(event: h11.Request, head: bytes | bytearray) -> None:
    """Limits h11 leaves to us (it bounds only an incomplete head): raises _Refused."""
    if len(event.target) > MAX_TARGET or len(head) > MAX_HEAD:
        too_large = _head_too_large(head)
        if too_large is not None:
            raise _Refused(too_large)
    names = {name for name, _ in event.headers}
    if b"transfer-encoding" in names and b"content-length" in names:
        # RFC 9112 section 6.3: both framings at once is how requests are smuggled past a
        # proxy; refused, and the connection closed after the answer
        raise _Refused(_error(400, "bad_request", "malformed request: both Content-Length "
                              "and Transfer-Encoding (RFC 9112 section 6.3)"))  # fmt: skip
    if len(event.headers) > MAX_HEADER_FIELDS:
        raise _Refused(_error(431, "bad_request",
                              f"more than {MAX_HEADER_FIELDS} header fields"))  # fmt: skip
    if event.http_version not in (b"1.0", b"1.1"):
        raise _Refused(_error(400, "bad_request", "malformed request line: only HTTP/1.0 and "
                              "HTTP/1.1 are served"))  # fmt: skip


def _protocol_error(exc: h11.RemoteProtocolError, head: bytes | bytearray) -> Response:
    """The answer to a head h11 refused: 413/414/431 when a limit explains it, else 400."""
    too_large = _head_too_large(head)
    if too_large is not None:
        return too_large
    if "Content-Length" in str(exc):
        match = _CONTENT_LENGTH.search(head)
        if match and int(match.group(1)) > MAX_BODY:  # too many digits for h11: too large
            return _too_large()
    if exc.error_status_hint == 431 or head.count(b"\n") > MAX_HEADER_FIELDS + 1:
        limits = f"{MAX_HEAD // 1024} KiB or has more than {MAX_HEADER_FIELDS} fields"
        return _error(431, "bad_request", f"the request head is larger than {limits}")
    return _error(400, "bad_request", f"malformed request: {exc}")


def _body_error(exc: h11.RemoteProtocolError, received: int, length: str | None) -> Response:
    text = str(exc)
    if _LONG_CHUNK_SIZE.search(text):
        return _bad_chunk_size()
    if "incomplete chunked read" in text:
        return _error(400, "bad_request", "the chunked body ended inside a chunk")
    if "peer closed" in text and length is not None:
        return _error(400, "bad_request", f"the body ended after {received} of {length} "
                      "bytes (Content-Length)")  # fmt: skip
    return _error(400, "bad_request", f"malformed body: {text}")


async def _linger(reader: asyncio.StreamReader, seconds: float = 2.0) -> None:
    """Before closing after an error, read what the client is still sending (for a while):
    closing with unread data makes the kernel send a reset, which can destroy the answer
    before the client reads it."""
    with contextlib.suppress(Exception):

        async def drain() -> None:
            while await reader.read(READ_SIZE):
                pass

        await asyncio.wait_for(drain(), seconds)


class _Refused(Exception):
    """A request answered before its body is read (400, 413, 503): the connection closes
    after it."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response
