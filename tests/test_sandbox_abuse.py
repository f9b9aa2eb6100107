"""The sandbox holds under abuse (issue 9 part 3), a small version of bench/abuse.py: under
a 256-descriptor limit, more idle keep-alive connections than it may hold, slowloris
clients, a burst from many clients, connections holding request bodies. In each case a
signed GET from a new connection is answered, promptly, and the server is idle again once
the attack ends."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from bench.abuse import (
    Slowloris,
    Target,
    burst,
    cpu_share,
    idle_keepalive,
    raise_own_limit,
    signed_get,
    silent_burst,
)
from outkit_cli.sandbox.app import MAX_BODY
from outkit_cli.sandbox.server import BODY_BUDGET
from tests.sandbox_fixture import Sandbox

NOFILE = 256
# Answered within 1 s on this machine alone (bench/abuse.py); the suite runs on a loaded
# machine, so the test allows more. The old server never answered at all.
PROMPT = 5.0


def _target(box: Sandbox) -> Target:
    creds = {"key": box.key, "passphrase": box.passphrase, "secret": box.secret}
    return Target(box.url, creds, box.process.pid)


def test_idle_keepalive_connections_beyond_the_limit_lock_nobody_out(
    start_sandbox: Callable[..., Sandbox],
) -> None:
    raise_own_limit(2 * NOFILE + 100)
    target = _target(start_sandbox(nofile=NOFILE))
    socks = idle_keepalive(target, 2 * NOFILE)
    try:
        assert len(socks) == 2 * NOFILE
        assert signed_get(target) < PROMPT
        assert signed_get(target) < PROMPT
    finally:
        for sock in socks:
            sock.close()
    # no busy loop left behind (the old accept loop spun at 100% on EMFILE)
    assert cpu_share(target.pid, 2.0) < 0.2


def test_connections_opened_all_at_once_never_run_the_server_out_of_descriptors(
    start_sandbox: Callable[..., Sandbox],
) -> None:
    # accepted in a rush, they outran the connections closed to make room for them: EMFILE,
    # a traceback per failed accept on the operator's terminal, and no accept for 1 s each
    # time (attacker trial: a GET waited 7.8 s behind 600 silent connections)
    raise_own_limit(3 * NOFILE + 100)
    box = start_sandbox(nofile=NOFILE)
    target = _target(box)
    socks = silent_burst(target, 3 * NOFILE)
    try:
        time.sleep(0.2)  # the kernel completes the connects: all queued at once
        assert max(signed_get(target) for _ in range(3)) < PROMPT
    finally:
        for sock in socks:
            sock.close()
    log = box.log()
    assert "out of file descriptors" not in log and "Traceback" not in log


def test_slowloris_clients_do_not_hold_up_others_and_are_dropped(
    start_sandbox: Callable[..., Sandbox],
) -> None:
    raise_own_limit(NOFILE + 100)
    box = start_sandbox(nofile=NOFILE)
    target = _target(box)
    loris = Slowloris(target, 30)
    loris.start()
    try:
        time.sleep(1.5)
        assert signed_get(target) < PROMPT
        # the head deadline (10 s) closes them, however steadily they dribble
        deadline = time.monotonic() + 60
        while loris.socks and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not loris.socks, f"{len(loris.socks)} slowloris connections still open"
    finally:
        loris.stop()
    assert cpu_share(target.pid, 2.0) < 0.2
    assert signed_get(target) < PROMPT


def test_a_burst_from_many_clients_is_answered_in_full(
    start_sandbox: Callable[..., Sandbox],
) -> None:
    raise_own_limit(NOFILE + 100)
    target = _target(start_sandbox(nofile=NOFILE))
    result: dict[str, Any] = burst(target, 2000, 50)
    assert result["unanswered"] == 0 and result["answered"] == 2000, result
    assert result["statuses"] == {"401": 2000}  # unsigned: every one answered by the API


def _post_head(box: Sandbox, length: int, credentials: bool = True) -> bytes:
    """A POST head declaring `length` body bytes; with `credentials`, the signed key's
    headers as a key holder sends them (the signature covers a body not yet sent)."""
    path = urlsplit(box.url).path + "/messages"
    host = urlsplit(box.url).netloc
    auth = ""
    if credentials:
        auth = (f"Outkit-Access-Key: {box.key}\r\nOutkit-Access-Passphrase: {box.passphrase}"
                f"\r\nOutkit-Access-Timestamp: {int(time.time())}\r\n"
                "Outkit-Access-Signature: c2lnbmVk\r\n")  # fmt: skip
    return (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"{auth}Content-Length: {length}\r\n\r\n").encode()  # fmt: skip


def _answer(sock: socket.socket) -> tuple[int, dict[str, Any]]:
    """Status and JSON body of the one answer on `sock` (read until the server closes)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_bodies_held_by_many_connections_are_bounded_in_all(
    start_sandbox: Callable[..., Sandbox],
) -> None:
    # 200 connections each sending a body just under MAX_BODY once held 2.1 GB: the bodies
    # held at once are now bounded (BODY_BUDGET), beyond it new bodies get a 503
    box = start_sandbox()
    target = _target(box)
    address = (urlsplit(box.url).hostname or "127.0.0.1", urlsplit(box.url).port or 80)
    holders = []
    try:
        for _ in range(BODY_BUDGET // (MAX_BODY - 1)):  # 6 holders: 60 MiB of 64
            sock = socket.create_connection(address, timeout=30)
            holders.append(sock)
            sock.sendall(_post_head(box, MAX_BODY - 1) + b"x" * 1000)
        # one round trip after them: the holders' heads, sent before it, have been read
        assert signed_get(target) < PROMPT
        refused = socket.create_connection(address, timeout=30)
        with refused:
            refused.sendall(_post_head(box, MAX_BODY // 2) + b"x" * 1000)
            status, doc = _answer(refused)
        assert status == 503 and doc["error"]["code"] == "server_busy", doc
        assert "retry" in doc["error"]["message"]
        assert signed_get(target) < PROMPT  # requests without a body are still served
    finally:
        for sock in holders:
            sock.close()
    # closing the holders frees their bytes: a body is taken again (polled, bounded)
    body = {"message": {"type": "email", "to": "ada@example.com", "project": "demo",
                        "text_body": "x" * (MAX_BODY // 2)}}  # fmt: skip
    deadline = time.monotonic() + 30
    while True:
        status, doc = box.request("POST", "/messages", body)
        if status != 503 or time.monotonic() > deadline:
            break
    assert status == 200, doc


def test_connections_without_valid_credentials_cannot_hold_the_body_budget(
    start_sandbox: Callable[..., Sandbox],
) -> None:
    # attacker trial 1, finding 11: seven connections without credentials declaring 10 MiB
    # bodies held the whole 64 MiB budget for 60 s, and every POST with a body got a 503
    box = start_sandbox()
    address = (urlsplit(box.url).hostname or "127.0.0.1", urlsplit(box.url).port or 80)
    good = _post_head(box, MAX_BODY).decode()
    stale = str(int(time.time()) - 3600)
    variants = [
        _post_head(box, MAX_BODY, credentials=False).decode(),  # nothing at all
        good.replace(box.passphrase, "wrong-passphrase"),
        good.replace(box.key, "no-such-key"),
        good.replace(f"Timestamp: {int(time.time())}", f"Timestamp: {stale}"),
        good.replace("Outkit-Access-Signature: c2lnbmVk\r\n", ""),
        # chunked, without a length to reserve up front: counted as it arrives
        _post_head(box, 0, credentials=False)
        .decode()
        .replace("Content-Length: 0", "Transfer-Encoding: chunked"),
    ]
    strangers = []
    try:
        for head in variants + variants[:1] * 6:  # more than the budget would hold
            sock = socket.create_connection(address, timeout=30)
            strangers.append(sock)
            sock.sendall(head.encode() + b"x" * 1000)
        # a key holder's signed POST with a body is taken while they are connected
        body = {"message": {"type": "email", "to": "ada@example.com", "project": "demo",
                            "text_body": "x" * (MAX_BODY // 2)}}  # fmt: skip
        started = time.monotonic()
        status, doc = box.request("POST", "/messages", body)
        assert status == 200, doc
        assert time.monotonic() - started < PROMPT
        for sock in strangers:
            status, doc = _answer(sock)
            assert status == 401 and doc["error"]["code"] == "unauthorized", doc
    finally:
        for sock in strangers:
            sock.close()
    # a form for the inbox is small: a large one is refused before it is read
    sock = socket.create_connection(address, timeout=30)
    with sock:
        sock.sendall(b"POST /clear HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000\r\n\r\n")
        status, doc = _answer(sock)
    assert status == 413, doc


def test_event_loop_errors_are_one_escaped_line_each() -> None:
    import errno
    from types import SimpleNamespace

    from outkit_cli.sandbox.server import SandboxServer

    lines: list[str] = []
    server: Any = SimpleNamespace(app=SimpleNamespace(log=lines.append))
    emfile = OSError(errno.EMFILE, "Too many open files")
    SandboxServer._loop_error(server, None, {"message": "socket.accept() out of system resource",
                                             "exception": emfile})  # fmt: skip
    SandboxServer._loop_error(server, None, {"message": "Task \x1b]0;x\x07 failed",
                                             "exception": ValueError("bad\x1b[2J")})  # fmt: skip
    SandboxServer._loop_error(server, None, {"message": "no exception"})
    assert lines == [
        "out of file descriptors (Too many open files): not accepting connections for 1 s; "
        "raise `ulimit -n` for more clients",
        "Task \\x1b]0;x\\x07 failed: ValueError: bad\\x1b[2J",
        "no exception",
    ]
