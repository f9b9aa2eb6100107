"""A loopback HTTP server that answers whatever a test tells it: hostile text in every
field, wrong-shaped JSON, any status. The sandbox answers like the real API; this one
answers like a broken or hostile one."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from tests.netservers import QuietHandler, serving

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


@contextlib.contextmanager
def fake_api(route: Route) -> Iterator[FakeApi]:
    api = FakeApi("", route)

    class Handler(QuietHandler):
        def _any(self) -> None:
            body = self.read_body()
            api.seen.append((self.command, self.path))
            self.send_json(*api.route(self.command, self.path, body))

        do_GET = do_POST = do_PUT = do_DELETE = _any

    with serving(Handler) as origin:
        api.url = f"{origin}/v1"
        yield api
