"""A loopback Outkit-like API that stores every message it is sent and can misbehave after
storing it: a gateway error, a lost answer, an answer of the wrong shape, a list that
ignores the `id_from_submitter` filter. Tests count what it stored: a row stored twice
is a double send. Nothing here listens beyond 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.netservers import QuietHandler, serving

# what to do with the n-th POST (1-based) after storing it: None answers the message;
# (status, payload) answers that; "drop" closes the connection without an answer
PostFault = Callable[[int], "tuple[int, Any] | str | None"]


@dataclass
class Store:
    messages: list[dict[str, Any]] = field(default_factory=list)
    posts: int = 0
    gets: int = 0
    drop_gets: bool = False  # close every GET's connection unanswered (lookups fail)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def stored(self) -> Counter[str]:
        """How many times each id_from_submitter was stored."""
        with self.lock:
            return Counter(str(m.get("id_from_submitter")) for m in self.messages)

    def add(self, message: dict[str, Any]) -> None:
        """A message stored before the run (another machine's, another project's)."""
        with self.lock:
            self.messages.append({**message, "id": str(uuid.uuid4()), "status": "received"})


@contextlib.contextmanager
def storing_api(
    post_fault: PostFault | None = None,
    *,
    refuse: Callable[[int], tuple[Any, ...] | None] | None = None,
    filters: bool = True,
    page: int | None = None,
    blind: bool = False,
    repeated: str = "all",
    lag: float = 0.0,
) -> Iterator[tuple[str, Store]]:
    """Yields (API URL, its store).

    ``refuse(n)`` answers the n-th POST before storing it (a 429): (status, payload), or
    (status, payload, headers). ``post_fault(n)``
    misbehaves after storing it. ``filters=False``: `GET /messages` ignores
    `id_from_submitter` and answers its newest messages (at most ``limit``, or at most
    ``page`` whatever the limit when ``page`` is set), as the hosted API may: it documents
    no filter (reference/outkit-facts.md). ``blind``: every list is empty, whatever is
    stored (a list scoped to something else, or a stub). ``repeated``: which values of a
    repeated `id_from_submitter` parameter the list applies: "all", or only the "first" or
    "last" one (as many web frameworks do). ``lag``: a message is listed only this many
    seconds after it was stored (a list served from a replica)."""
    store = Store()
    stored_at: dict[str, float] = {}  # message id -> time.monotonic() it was stored

    class Handler(QuietHandler):
        def _answer(self, status: int, payload: Any) -> None:
            self.send_json(status, payload)

        def do_POST(self) -> None:
            body = self.read_body()
            with store.lock:
                store.posts += 1
                n = store.posts
            refused = refuse(n) if refuse else None
            if refused is not None:
                self.send_json(*refused)  # (status, payload) or (status, payload, headers)
                return
            message = dict(json.loads(body)["message"])
            message.update(id=str(uuid.uuid4()), status="received", done=False)
            with store.lock:
                store.messages.append(message)
                stored_at[message["id"]] = time.monotonic()
            fault = post_fault(n) if post_fault else None
            if fault == "drop":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if fault is not None:
                assert not isinstance(fault, str)
                self._answer(*fault)
                return
            self._answer(200, {"data": message})

        def do_GET(self) -> None:
            if store.drop_gets:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            with store.lock:
                store.gets += 1
                seen_after = time.monotonic() - lag
                newest_first = [
                    m for m in reversed(store.messages)
                    if stored_at.get(m["id"], 0.0) <= seen_after
                ]  # fmt: skip
            if url.path.rstrip("/").endswith("/messages"):
                limit = int(query.get("limit", ["50"])[0])
                values = query.get("id_from_submitter", [])
                if values and repeated != "all":
                    values = [values[0] if repeated == "first" else values[-1]]
                wanted = set(values)
                if blind:
                    listed = []
                elif filters:
                    listed = [m for m in newest_first
                              if not wanted or m.get("id_from_submitter") in wanted]  # fmt: skip
                else:
                    listed = newest_first
                self._answer(200, {"data": listed[: page or limit]})
                return
            wanted_id = url.path.rsplit("/", 1)[1]
            for m in newest_first:
                if m["id"] == wanted_id:
                    self._answer(200, {"data": m})
                    return
            self._answer(404, {"error": {"message": "no such message", "code": "not_found"}})

    with serving(Handler) as origin:
        yield f"{origin}/v1", store
