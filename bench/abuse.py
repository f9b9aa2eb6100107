"""The sandbox under abuse: idle keep-alive connections, slowloris clients, a burst.

Under a descriptor limit (`ulimit -n`, default 1024 here), against `outkit serve`:
1. N idle keep-alive connections (default 2,000: more than the limit), then a signed GET
   from a new connection: its time (target: under 1 s); then the same N connections
   opened all at once, sending nothing (they wait in the kernel's queue together), and
   the same GET; the server's log must hold no "out of file descriptors" line nor a
   traceback;
2. M slowloris connections (default 60) dribbling one header byte a second, and the same
   signed GET while they dribble;
3. the server's CPU use in the seconds after each attack (target: low, no busy loop);
4. a burst of R requests (default 20,000) from C concurrent keep-alive clients (default
   200): every request answered (none dropped unanswered).

    .venv/bin/python bench/abuse.py [--nofile 1024] [--idle 2000] [--slowloris 60]
        [--requests 20000] [--clients 200]

Prints the figures; writes bench/results/abuse.json. tests/test_sandbox_abuse.py runs a
small version of each step on every `make test`.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import resource
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from outkit_cli.sandbox.process import start_url_process, stop_process  # noqa: E402
from outkit_cli.signing import auth_headers  # noqa: E402


@dataclass
class Target:
    url: str  # http://127.0.0.1:PORT/v1
    creds: dict[str, str]  # key, passphrase, secret of the signed key
    pid: int

    @property
    def address(self) -> tuple[str, int]:
        parts = urlsplit(self.url)
        return parts.hostname or "127.0.0.1", parts.port or 80


def raise_own_limit(want: int) -> None:
    """This process holds the attack's connections: let it open `want` descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))


def signed_get(target: Target, timeout: float = 30.0) -> float:
    """Seconds for a signed GET /v1/messages?limit=1 on a new connection (status 200)."""
    path = urlsplit(target.url).path + "/messages?limit=1"
    headers = auth_headers(method="GET", path=path, body=b"", **target.creds)
    start = time.perf_counter()
    conn = http.client.HTTPConnection(*target.address, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        resp.read()
    finally:
        conn.close()
    if resp.status != 200:
        raise AssertionError(f"signed GET answered {resp.status}")
    return time.perf_counter() - start


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by process `pid` (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_share(pid: int, seconds: float) -> float:
    """Share of one core `pid` used over the next `seconds` (0.0 to 1.0+)."""
    before = cpu_seconds(pid)
    time.sleep(seconds)
    return (cpu_seconds(pid) - before) / seconds


def idle_keepalive(target: Target, count: int) -> list[socket.socket]:
    """`count` connections, each after one answered request, left open and silent. Those
    the server closes to make room are kept too (closed on our side later)."""
    socks = []
    for _ in range(count):
        try:
            sock = socket.create_connection(target.address, timeout=10)
        except OSError:
            break  # our own descriptors ran out: what we hold is the attack
        try:
            sock.sendall(b"GET /v1/nothing HTTP/1.1\r\nHost: x\r\n\r\n")
            sock.recv(65536)
        except OSError:
            pass
        socks.append(sock)
    return socks


def silent_burst(target: Target, count: int) -> list[socket.socket]:
    """`count` connections opened at once (non-blocking connects, nothing sent): they all
    wait in the kernel's queue together, and the server accepts them in a rush."""
    socks = []
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.connect(target.address)
        except BlockingIOError:
            pass  # in progress: the kernel completes it
        except OSError:
            sock.close()
            break
        socks.append(sock)
    return socks


@dataclass
class Slowloris:
    """`count` connections that send a request line, then one header byte a second."""

    target: Target
    count: int
    socks: list[socket.socket] = field(default_factory=list)
    dropped: int = 0  # connections the server closed (its head deadline)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        for _ in range(self.count):
            sock = socket.create_connection(self.target.address, timeout=10)
            sock.sendall(b"GET /v1/messages HTTP/1.1\r\nHost: x\r\n")
            self.socks.append(sock)
        self._thread = threading.Thread(target=self._dribble, daemon=True)
        self._thread.start()

    def _dribble(self) -> None:
        header = b"X-Slow: " + b"a" * 10_000
        i = 0
        while not self._stop.wait(1.0):
            for sock in list(self.socks):
                try:
                    sock.send(header[i % len(header) : i % len(header) + 1])
                except OSError:
                    self.socks.remove(sock)
                    self.dropped += 1
                    sock.close()
            i += 1

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        for sock in self.socks:
            sock.close()


def burst(target: Target, requests: int, clients: int) -> dict[str, Any]:
    """`requests` unsigned GETs of /v1/messages from `clients` threads, each on its own
    keep-alive connection (a new one when the server closes it). Counts answers by status
    and requests that got no answer at all."""
    statuses: dict[int, int] = {}
    unanswered = [0]
    lock = threading.Lock()
    per_client = [requests // clients + (1 if i < requests % clients else 0)
                  for i in range(clients)]  # fmt: skip

    def client(n: int) -> None:
        conn = None
        for _ in range(n):
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(*target.address, timeout=60)
                conn.request("GET", "/v1/messages")
                resp = conn.getresponse()
                resp.read()
                with lock:
                    statuses[resp.status] = statuses.get(resp.status, 0) + 1
                if resp.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException):
                with lock:
                    unanswered[0] += 1
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()

    start = time.perf_counter()
    threads = [threading.Thread(target=client, args=(n,)) for n in per_client]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    return {
        "requests": requests,
        "clients": clients,
        "answered": sum(statuses.values()),
        "unanswered": unanswered[0],
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "seconds": round(elapsed, 2),
        "rate": round(requests / elapsed, 1),
    }


def start_sandbox(work: Path, nofile: int) -> tuple[Any, Target]:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTKIT_")}
    log = (work / "serve.log").open("wb")
    argv = [sys.executable, "-m", "outkit_cli", "serve", "--port", "0",
            "--data-dir", str(work / "data")]  # fmt: skip
    proc, url = start_url_process(argv, env=env, stderr=log, preexec_fn=limit)
    log.close()
    keys = json.loads((work / "data" / "keys.json").read_text())["keys"]
    signed = next(k for k in keys if k["signed"])
    creds = {name: signed[name] for name in ("key", "passphrase", "secret")}
    return proc, Target(url, creds, proc.pid)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nofile", type=int, default=1024)
    parser.add_argument("--idle", type=int, default=2000)
    parser.add_argument("--slowloris", type=int, default=60)
    parser.add_argument("--dribble-seconds", type=float, default=15.0)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "abuse.json")
    opts = parser.parse_args()
    raise_own_limit(opts.idle + opts.slowloris + opts.clients + 200)

    work = Path(tempfile.mkdtemp(prefix="outkit-abuse-"))
    proc, target = start_sandbox(work, opts.nofile)
    figures: dict[str, Any] = {"nofile": opts.nofile}
    try:
        figures["baseline_get_s"] = round(signed_get(target), 4)
        socks = idle_keepalive(target, opts.idle)
        figures["idle_connections_opened"] = len(socks)
        figures["get_during_idle_s"] = round(signed_get(target), 4)
        figures["cpu_during_idle"] = round(cpu_share(target.pid, 3), 3)
        for sock in socks:
            sock.close()
        figures["cpu_after_idle"] = round(cpu_share(target.pid, 3), 3)

        rush = silent_burst(target, opts.idle)
        time.sleep(0.2)  # the kernel completes the connects
        figures["silent_connections_opened"] = len(rush)
        figures["get_during_silent_s"] = round(max(signed_get(target) for _ in range(3)), 4)
        for sock in rush:
            sock.close()

        loris = Slowloris(target, opts.slowloris)
        loris.start()
        time.sleep(min(3.0, opts.dribble_seconds))
        figures["get_during_slowloris_s"] = round(signed_get(target), 4)
        time.sleep(max(0.0, opts.dribble_seconds - 3.0))
        figures["slowloris_dropped_by_server"] = loris.dropped
        loris.stop()
        figures["cpu_after_slowloris"] = round(cpu_share(target.pid, 3), 3)

        figures["burst"] = burst(target, opts.requests, opts.clients)
        figures["cpu_after_burst"] = round(cpu_share(target.pid, 3), 3)
        figures["get_after_burst_s"] = round(signed_get(target), 4)
    finally:
        stop_process(proc)
    log = (work / "serve.log").read_text("utf-8", "replace")
    figures["out_of_descriptors_lines"] = log.count("out of file descriptors")
    figures["tracebacks"] = log.count("Traceback")
    ok = (
        figures["get_during_idle_s"] < 1
        and figures["get_during_silent_s"] < 1
        and not figures["out_of_descriptors_lines"]
        and not figures["tracebacks"]
        and figures["get_during_slowloris_s"] < 1
        and figures["burst"]["unanswered"] == 0
        and max(figures["cpu_after_idle"], figures["cpu_after_slowloris"]) < 0.1
    )
    figures["passed"] = ok
    print(json.dumps(figures, indent=2))
    sys.path.insert(0, str(ROOT / "bench"))
    from common import write_report

    write_report(opts.output, "abuse", figures)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
