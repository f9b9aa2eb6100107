"""The HTTP server libraries considered for the sandbox, each serving one fixed JSON body.

Why the sandbox's front end is h11 on asyncio (server.py) and not another: see the table
this prints next to the reasons in docs/benchmarks.md. Each server runs as a child process
on loopback; the client of bench_sandbox.py (4 keep-alive raw-socket clients) measures
GET requests per second, rounds alternating between servers, median of 3.

    .venv/bin/python bench/bench_http_servers.py [--seconds 2] [--rounds 3]

Needs the bench extra (uvicorn with httptools, waitress); a missing one is reported and
skipped. Writes bench/results/http_servers.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import multiprocessing as mp
import os
import statistics
import sys
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_sandbox import BARE_SERVER, measure
from common import ROOT, start_server, stop, write_report

BODY = '{"data": {"id": "00000000-0000-0000-0000-000000000000", "status": "delivered"}}'
FREE_PORT = textwrap.dedent(
    """
    import socket
    s = socket.socket(); s.bind(("127.0.0.1", 0)); PORT = s.getsockname()[1]; s.close()
    print(f"http://127.0.0.1:{PORT}/v1", flush=True)
    """
)
SERVERS = {
    "stdlib http.server (threads)": ("", textwrap.dedent(
        f"""
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        BODY = {BODY!r}.encode()
        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(BODY)))
                self.end_headers()
                self.wfile.write(BODY)
            def log_message(self, *a): pass
        class S(ThreadingHTTPServer):
            daemon_threads = True
        s = S(("127.0.0.1", 0), H)
        print(f"http://127.0.0.1:{{s.server_address[1]}}/v1", flush=True)
        s.serve_forever()
        """)),
    "h11 on asyncio (the sandbox's front end)": ("h11", BARE_SERVER),
    "uvicorn + httptools (asyncio)": ("uvicorn", FREE_PORT + textwrap.dedent(
        f"""
        import uvicorn
        BODY = {BODY!r}.encode()
        async def app(scope, receive, send):
            await send({{"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(BODY)).encode())]}})
            await send({{"type": "http.response.body", "body": BODY}})
        uvicorn.run(app, host="127.0.0.1", port=PORT, http="httptools", log_level="error",
                    access_log=False)
        """)),
    "waitress (threads)": ("waitress", FREE_PORT + textwrap.dedent(
        f"""
        import waitress
        BODY = {BODY!r}.encode()
        def app(environ, start_response):
            start_response("200 OK", [("Content-Type", "application/json"),
                                      ("Content-Length", str(len(BODY)))])
            return [BODY]
        waitress.serve(app, host="127.0.0.1", port=PORT, threads=8, _quiet=True)
        """)),
}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument(
        "--output", type=Path, default=ROOT / "bench" / "results" / "http_servers.json"
    )
    opts = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    running = {}
    for name, (module, code) in SERVERS.items():
        if module and importlib.util.find_spec(module) is None:
            print(f"{name}: not installed (pip install -e '.[bench]'), skipped")
            continue
        running[name] = start_server([sys.executable, "-c", code], env=env)
    rates: dict[str, list[float]] = {name: [] for name in running}
    ctx = mp.get_context("fork")
    with ctx.Pool(opts.clients) as pool:
        for _ in range(opts.rounds):
            for name, (_, url) in running.items():
                path = "/v1/messages/x"
                r = measure(url, "GET", path, b"", None, opts.clients, opts.seconds, pool)
                rates[name].append(r["rate"])
    for proc, _ in running.values():
        stop(proc)
    base = statistics.median(rates["stdlib http.server (threads)"])
    results = {}
    for name, values in rates.items():
        median = statistics.median(values)
        results[name] = {
            "rate": median,
            "rounds": values,
            "ratio_to_stdlib": round(median / base, 2),
        }
        print(f"{name:45} {median:8.0f} req/s  {median / base:5.2f}x the stdlib server")
    write_report(opts.output, "http_servers", {"clients": opts.clients, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
