"""Request rate of the sandbox against a fixed-JSON handler on the same HTTP front end.

Four client processes, each with one keep-alive connection, send requests back to back,
in rounds alternating between the servers (5 rounds of 2 s each), against
(a) a handler answering a fixed JSON body, served by the sandbox's own front end
(server.py: asyncio and h11, the same worker pool) and (b) `outkit serve`:
GET /v1/messages/{id} and POST /v1/messages (the demo `welcome` template, signed,
delivered to the outbox by the worker while the run goes on). The client is a raw-socket
loop (one send, read headers + Content-Length), so it costs little next to either server.
Both servers run as child processes with TCP_NODELAY; the sandbox's per-request log line
goes to a file. Both have their threads on one CPU, as `outkit serve` does by default
(--pin-cpu, outkit_cli/sandbox/affinity.py); `--no-pin-cpu` runs both unpinned.

After each POST round the script waits until the sandbox has rendered and delivered every
message of it, so that no round shares the machine with the sandbox's deferred work; the
seconds that took are reported.

The ratio is the median of the rounds' ratios, each round of the sandbox against the round
of the fixed-JSON handler just before it: on a shared 2-core machine rates drift by 20%
from one round to the next, and two rounds next to each other share the same drift.

Targets (issue 9): GET >= 0.7x and POST >= 0.4x the fixed-JSON handler's rate, no errors.

    .venv/bin/python bench/bench_sandbox.py [--seconds 2] [--rounds 5] [--clients 4]
                                            [--no-pin-cpu]

Prints rates and ratios; writes bench/results/sandbox.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import socket
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, start_server, stop, write_report

sys.path.insert(0, str(ROOT))

from outkit_cli.signing import auth_headers

BARE_SERVER = textwrap.dedent(
    """
    # A fixed-JSON handler served by the sandbox's own front end (server.py: asyncio, h11,
    # the same thread pool): the ratio measures the sandbox's work, not the HTTP library's.
    import sys
    import threading

    from outkit_cli.sandbox.app import Response
    from outkit_cli.sandbox.faults import Faults
    from outkit_cli.sandbox.server import SandboxServer

    BODY = '{"data": {"id": "00000000-0000-0000-0000-000000000000", "status": "delivered"}}'

    class NoAuth:
        # the front end asks the app's authenticator about a body's head before reading
        # it (server.py, _admit_body); checking credentials is the sandbox's work
        def precheck(self, headers):
            return None

    class FixedApp:
        faults = Faults()
        inbox = None
        auth = NoAuth()

        def handle(self, method, target, headers, body):
            return Response(200, BODY, {})

        def log(self, line):
            pass

    if "--pin-cpu" in sys.argv:
        # as `outkit serve` does by default: both servers run alike
        from outkit_cli.sandbox.affinity import NotPinned, pin_to_one_cpu

        try:
            pin_to_one_cpu()
        except NotPinned as exc:
            print(f"fixed-JSON server not pinned: {exc}", file=sys.stderr)
    server = SandboxServer(("127.0.0.1", 0), FixedApp())
    print(f"http://127.0.0.1:{server.server_address[1]}/v1", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    """
)

POST_BODY = json.dumps(
    {
        "message": {
            "type": "email",
            "to": "Ada Lovelace <ada@example.com>",
            "project": "demo",
            "template": "welcome",
            "data": {"name": "Ada"},
        }
    },
    separators=(",", ":"),
).encode()


def build_request(method: str, host: str, path: str, body: bytes, creds: dict | None) -> bytes:
    headers = {"Host": host, "Connection": "keep-alive", "User-Agent": "bench"}
    if creds:
        headers.update(auth_headers(method=method, path=path, body=body, **creds))
    if body:
        headers["Content-Type"] = "application/json"
        headers["Content-Length"] = str(len(body))
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return (head + "\r\n").encode() + body


def read_response(sock: socket.socket, buf: bytearray) -> int:
    """Read one response from ``sock``; returns its status. ``buf`` keeps leftovers."""
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            break
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        buf += chunk
    head = bytes(buf[:end]).decode("latin-1")
    status = int(head[9:12])
    length = 0
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.lower() == "content-length":
            length = int(value)
    total = end + 4 + length
    while len(buf) < total:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        buf += chunk
    del buf[:total]
    return status


def client(args: tuple) -> tuple[int, int, str]:
    """One keep-alive connection, requests back to back from start_at until stop_at."""
    url_host, port, method, path, body, creds, start_at, stop_at = args
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = bytearray()
    ok = errors = 0
    last_error = ""
    # signatures stay valid for 300 s: re-sign once a second, not per request
    stamp, request = 0, b""
    while time.time() < start_at:
        time.sleep(0.001)
    while True:
        now = time.time()
        if now >= stop_at:
            break
        if int(now) != stamp:
            stamp = int(now)
            request = build_request(method, url_host, path, body, creds)
        sock.sendall(request)
        status = read_response(sock, buf)
        if 200 <= status < 300:
            ok += 1
        else:
            errors += 1
            last_error = str(status)
    sock.close()
    return ok, errors, last_error


def measure(url: str, method: str, path: str, body: bytes, creds: dict | None,
            clients: int, seconds: float, pool: mp.pool.Pool) -> dict:  # fmt: skip
    host_port = url.split("/")[2]
    port = int(host_port.rsplit(":", 1)[1])
    start_at = time.time() + 0.3
    jobs = [(host_port, port, method, path, body, creds, start_at, start_at + seconds)] * clients
    results = pool.map(client, jobs)
    ok = sum(r[0] for r in results)
    errors = sum(r[1] for r in results)
    return {
        "requests": ok + errors,
        "errors": errors,
        "last_error": next((r[2] for r in results if r[2]), None),
        "rate": round(ok / seconds, 1),
    }


def wait_delivered(url: str, creds: dict, timeout: float = 300.0) -> float:
    """Wait until the sandbox's worker has finished every message (the newest one listed is
    done: the worker takes them in order); returns the seconds waited. The next round
    then does not share the machine with the sandbox's deferred rendering and delivery."""
    import http.client

    began = time.monotonic()
    port = int(url.split(":")[2].split("/")[0])
    path = "/v1/messages?limit=1"
    while time.monotonic() - began < timeout:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            conn.request("GET", path, headers=auth_headers(method="GET", path=path, body=b"",
                                                           **creds))  # fmt: skip
            listed = json.loads(conn.getresponse().read())["data"]
        finally:
            conn.close()
        if not listed or listed[0]["done"]:
            break
        time.sleep(0.1)
    return time.monotonic() - began


def paired_ratio(bare_runs: list[dict], sbx_runs: list[dict]) -> float | None:
    """Median over the rounds of (sandbox rate / fixed-JSON rate of the round before it)."""
    ratios = [s["rate"] / b["rate"] for b, s in zip(bare_runs, sbx_runs, strict=True) if b["rate"]]
    return round(statistics.median(ratios), 3) if ratios else None


def summarise(runs: list[dict]) -> dict:
    """Median rate over the rounds, errors summed, every round's rate kept."""
    rates = sorted(r["rate"] for r in runs)
    out = {
        "rate": statistics.median(rates),
        "rounds": [r["rate"] for r in runs],
        "requests": sum(r["requests"] for r in runs),
        "errors": sum(r["errors"] for r in runs),
        "last_error": next((r["last_error"] for r in runs if r["last_error"]), None),
    }
    if any("drain" in r for r in runs):
        # seconds after each round until every message it sent was delivered
        out["drain"] = [r.get("drain") for r in runs]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="length of one round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per server, alternating")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument(
        "--no-pin-cpu",
        dest="pin_cpu",
        action="store_false",
        help="run both servers with their threads free to move between CPUs",
    )
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "sandbox.json")
    opts = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="outkit-bench-"))
    log = (work / "serve.log").open("wb")
    pin = "--pin-cpu" if opts.pin_cpu else "--no-pin-cpu"
    bare, bare_url = start_server(
        [sys.executable, "-c", BARE_SERVER, pin], env={"PYTHONPATH": str(ROOT), **os.environ}
    )
    sbx, sbx_url = start_server(
        [sys.executable, "-m", "outkit_cli", "serve", "--port", "0", "--data-dir",
         str(work / "data"), pin],
        stderr=log,
    )  # fmt: skip
    keys = json.loads((work / "data" / "keys.json").read_text())["keys"]
    signed = next(k for k in keys if k["signed"])
    creds = {"key": signed["key"], "passphrase": signed["passphrase"], "secret": signed["secret"]}

    # one message to GET
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", int(sbx_url.split(":")[2].split("/")[0]))
    hdrs = auth_headers(method="POST", path="/v1/messages", body=POST_BODY, **creds)
    conn.request("POST", "/v1/messages", body=POST_BODY, headers=hdrs)
    message_id = json.loads(conn.getresponse().read())["data"]["id"]
    conn.close()
    get_path = f"/v1/messages/{message_id}"

    results: dict = {}
    ctx = mp.get_context("fork")
    with ctx.Pool(opts.clients) as pool:
        for name, method, body in (("get", "GET", b""), ("post", "POST", POST_BODY)):
            path = get_path if method == "GET" else "/v1/messages"
            # rounds alternate between the two servers so that load from anything else
            # on the machine falls on both alike; each pair of rounds gives a ratio
            bare_runs, sbx_runs = [], []
            for _ in range(opts.rounds):
                bare_runs.append(
                    measure(bare_url, method, path, body, None, opts.clients, opts.seconds, pool)
                )
                sbx_runs.append(
                    measure(sbx_url, method, path, body, creds, opts.clients, opts.seconds, pool)
                )
                if method == "POST":
                    sbx_runs[-1]["drain"] = round(wait_delivered(sbx_url, creds), 2)
            bare_r, sbx_r = summarise(bare_runs), summarise(sbx_runs)
            results[name] = {
                "bare": bare_r,
                "sandbox": sbx_r,
                "ratio": paired_ratio(bare_runs, sbx_runs),
            }
    stop(bare)
    stop(sbx)
    log.close()

    targets = {"get": 0.7, "post": 0.4}
    ok = True
    print(f"{opts.clients} keep-alive clients, {opts.rounds} alternating rounds of "
          f"{opts.seconds:g} s, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"servers {'pinned to one CPU' if opts.pin_cpu else 'not pinned'}")  # fmt: skip
    for name, r in results.items():
        passed = (r["ratio"] or 0) >= targets[name] and not r["sandbox"]["errors"] \
            and not r["bare"]["errors"]  # fmt: skip
        ok &= passed
        r["target"], r["passed"] = targets[name], passed
        print(
            f"{name.upper():4}  bare {r['bare']['rate']:8.0f} req/s   sandbox "
            f"{r['sandbox']['rate']:8.0f} req/s   ratio {r['ratio'] or 0:.2f} "
            f"(target >= {targets[name]})   errors {r['sandbox']['errors'] + r['bare']['errors']}"
            f"   {'ok' if passed else 'MISSED'}"
        )
        if "drain" in r["sandbox"]:
            print(
                f"      every message of a round delivered {r['sandbox']['drain']} s after "
                "it (the next round waits)"
            )
    write_report(
        opts.output,
        "sandbox",
        {
            "clients": opts.clients,
            "seconds": opts.seconds,
            "rounds": opts.rounds,
            "pin_cpu": opts.pin_cpu,
            "results": results,
            "passed": ok,
        },
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
