"""A loopback HTTP server that answers whatever a test tells it: hostile text in every
field, wrong-shaped JSON, any status. The sandbox answers like the real API; this one
answers like a broken or hostile one."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# (status, JSON value or raw bytes)
Answer = tuple[int, Any]
Route = Callable[[str, str, bytes], Answer]  # (method, path, body) -> answer


@dataclass
class FakeApi:
    url: str
    route: Route
    seen: list[tuple[str, str]] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        return {
            "OUTKIT_API_URL": self.url,
            "OUTKIT_ACCESS_KEY": "key",
            "OUTKIT_ACCESS_PASSPHRASE": "pass",
            "OUTKIT_ACCESS_SECRET": "secret",
            "OUTKIT_RETRIES": "0",
            "OUTKIT_TIMEOUT": "30",
        }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a client that stopped reading (a huge answer) is not news; and the default
        # traceback would land in the stderr the test is checking (CliRunner swaps it)
        pass


@contextlib.contextmanager
def fake_api(route: Route) -> Iterator[FakeApi]:
    api = FakeApi("", route)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _any(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            api.seen.append((self.command, self.path))
            status, value = api.route(self.command, self.path, body)
            raw = value if isinstance(value, bytes) else json.dumps(value).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_POST = do_PUT = do_DELETE = _any

    server = _Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    api.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
