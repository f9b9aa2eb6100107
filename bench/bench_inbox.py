"""The browser inbox under load: its first page with 10,000 stored messages, and what five
open inbox tabs cost the API.

1. 10,000 messages are stored (one real `welcome` email, sent through the API, copied
   with fresh ids, alternating with SMS and failed ones), then the sandbox is restarted.
   `GET /` (the first inbox page, 50 rows) is timed 30 times over a keep-alive
   connection: target median < 100 ms. A search (`/rows?q=...`, a scan of every body) is
   timed too, for information.
2. POST /v1/messages rate (4 raw-socket keep-alive clients, as bench_sandbox.py) without
   and with five "tabs": each a thread holding `/events` open and re-fetching `/rows` on
   every change, as the page's script does. Rounds alternate (median of --rounds):
   target: with tabs >= 0.9x without.
3. Live latency: from a POST's answer to the event on an open stream (median of 20).

    .venv/bin/python bench/bench_inbox.py [--seconds 3] [--rounds 3] [--messages 10000]

Writes bench/results/inbox.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_sandbox import POST_BODY, measure
from common import ROOT, start_server, stop, write_report

sys.path.insert(0, str(ROOT))

from outkit_cli.signing import auth_headers


def serve(data: Path, log: Path) -> tuple:
    return start_server(
        [sys.executable, "-m", "outkit_cli", "serve", "--port", "0", "--data-dir", str(data)],
        stderr=log.open("ab"),
    )


def port_of(url: str) -> int:
    return int(url.split(":")[2].split("/")[0])


def fill(db: Path, template: dict, count: int) -> None:
    """`count` messages copied from `template` with fresh ids, some SMS, some failed."""
    rows = []
    for i in range(count):
        doc = dict(template)
        doc["id"] = str(uuid.UUID(int=random.getrandbits(128), version=4))
        doc["to"] = f"user{i}@example.com"
        if i % 5 == 0:
            doc.update(
                type="sms",
                to=f"+47{i:08d}",
                html_body=None,
                subject=None,
                text_body=f"Reminder {i}: your appointment is tomorrow.",
            )
        elif i % 13 == 0:
            doc.update(status="render_error", status_message="html template: boom")
        text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
        rows.append((doc["id"], doc["status"], 1, None, text))
    conn = sqlite3.connect(db)
    with conn:
        conn.executemany(
            "INSERT INTO messages (id, status, done, id_from_submitter, doc) VALUES (?,?,?,?,?)",
            rows,
        )
    conn.close()


def time_get(port: int, path: str, times: int) -> list[float]:
    """Milliseconds per GET; `{i}` in `path` makes each request different (no cache)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    out = []
    for i in range(times):
        start = time.perf_counter()
        conn.request("GET", path.format(i=i))
        resp = conn.getresponse()
        body = resp.read()
        out.append((time.perf_counter() - start) * 1000)
        assert resp.status == 200 and body, (resp.status, body[:200])
    conn.close()
    return out


def tab(port: int, stop_at: float, fetches: list[int]) -> None:
    """One open inbox tab: the event stream, and a /rows fetch for every change after the
    first event (the page's state when it opened)."""
    events = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    events.request("GET", "/events")
    stream = events.getresponse()
    rows = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    first = True
    while time.time() < stop_at:
        line = stream.readline()
        if not line:
            break
        if not line.startswith(b"data:"):
            continue
        if first:
            first = False
            continue
        rows.request("GET", "/rows")
        rows.getresponse().read()
        fetches.append(1)
    events.close()
    rows.close()


def tabs_process(port: int, count: int, stop_at: float, queue: mp.Queue) -> None:
    fetches: list[int] = []
    threads = [
        threading.Thread(target=tab, args=(port, stop_at, fetches), daemon=True)
        for _ in range(count)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, stop_at - time.time()) + 5)
    queue.put(len(fetches))


def live_latency(port: int, creds: dict, times: int) -> list[float]:
    """Milliseconds from a POST's answer to the next event on an open stream."""
    events = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    events.request("GET", "/events")
    stream = events.getresponse()
    seen: list[float] = []

    def read() -> None:
        while True:
            try:
                line = stream.readline()
            except (OSError, AttributeError, http.client.HTTPException):
                # events.close() below ends the stream under this reader (http.client then
                # raises AttributeError from its closed buffer): the measurement is over
                return
            if not line:
                return
            if line.startswith(b"data:"):
                seen.append(time.perf_counter())

    threading.Thread(target=read, daemon=True).start()
    body = json.dumps({"message": {**json.loads(POST_BODY)["message"], "sync": True}}).encode()
    api = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    out = []
    for _ in range(times):
        time.sleep(0.6)  # quiet: the previous send's events have passed
        hdrs = auth_headers(method="POST", path="/v1/messages", body=body, **creds)
        api.request("POST", "/v1/messages", body=body, headers=hdrs)
        api.getresponse().read()
        sent = time.perf_counter()
        deadline = sent + 5
        while not any(t >= sent for t in seen) and time.perf_counter() < deadline:
            time.sleep(0.001)
        # an event stamped before `sent` but after the POST went out also counts as 0
        later = [t for t in seen if t >= sent]
        out.append((later[0] - sent) * 1000 if later else 5000.0)
    events.close()
    api.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--tabs", type=int, default=5)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "inbox.json")
    opts = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="outkit-bench-inbox-"))
    data, log = work / "data", work / "serve.log"
    proc, url = serve(data, log)
    keys = json.loads((data / "keys.json").read_text())["keys"]
    signed = next(k for k in keys if k["signed"])
    creds = {"key": signed["key"], "passphrase": signed["passphrase"], "secret": signed["secret"]}
    body = json.dumps({"message": {**json.loads(POST_BODY)["message"], "sync": True}}).encode()
    conn = http.client.HTTPConnection("127.0.0.1", port_of(url))
    conn.request(
        "POST",
        "/v1/messages",
        body=body,
        headers=auth_headers(method="POST", path="/v1/messages", body=body, **creds),
    )
    template = json.loads(conn.getresponse().read())["data"]
    conn.close()
    stop(proc)
    fill(data / "sandbox.sqlite3", template, opts.messages - 1)

    proc, url = serve(data, log)
    port = port_of(url)
    time_get(port, "/", 3)  # warm up: templates compiled, caches filled
    first_page = time_get(port, "/", 30)
    search = time_get(port, "/rows?q=user99{i}%40", 5)
    filtered = time_get(port, "/rows?type=sms&project=demo&n={i}", 10)

    ctx = mp.get_context("fork")
    without, with_tabs, fetched = [], [], []
    with ctx.Pool(opts.clients) as pool:
        for _ in range(opts.rounds):
            without.append(
                measure(
                    url, "POST", "/v1/messages", POST_BODY, creds, opts.clients, opts.seconds, pool
                )["rate"]
            )
            queue: mp.Queue = ctx.Queue()
            stop_at = time.time() + opts.seconds + 1.5
            tabs = ctx.Process(target=tabs_process, args=(port, opts.tabs, stop_at, queue))
            tabs.start()
            time.sleep(0.5)  # the tabs are open before the clock starts
            with_tabs.append(
                measure(
                    url, "POST", "/v1/messages", POST_BODY, creds, opts.clients, opts.seconds, pool
                )["rate"]
            )
            fetched.append(queue.get(timeout=opts.seconds + 30))
            tabs.join(30)
    latency = live_latency(port, creds, 20)
    stop(proc)

    rate_without, rate_with = statistics.median(without), statistics.median(with_tabs)
    ratio = round(rate_with / rate_without, 3) if rate_without else 0.0
    page_ms = statistics.median(first_page)
    results = {
        "messages": opts.messages,
        "first_page_ms": {
            "median": round(page_ms, 1),
            "max": round(max(first_page), 1),
            "target": 100,
            "passed": page_ms < 100,
        },
        "search_ms_median": round(statistics.median(search), 1),
        "filter_ms_median": round(statistics.median(filtered), 1),
        "api_post_rate": {
            "without_tabs": without,
            "with_tabs": with_tabs,
            "tabs": opts.tabs,
            "median_without": rate_without,
            "median_with": rate_with,
            "ratio": ratio,
            "target": 0.9,
            "passed": ratio >= 0.9,
            "rows_fetched_by_tabs": fetched,
        },
        "live_latency_ms_median": round(statistics.median(latency), 1),
        "live_latency_ms_max": round(max(latency), 1),
    }
    print(f"{opts.messages} messages, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(
        f"first inbox page: median {page_ms:.1f} ms, max {max(first_page):.1f} ms "
        f"(target < 100 ms)   {'ok' if page_ms < 100 else 'MISSED'}"
    )
    print(
        f"search over every body: {results['search_ms_median']} ms; "
        f"filter type+project: {results['filter_ms_median']} ms"
    )
    print(
        f"API POST rate: {rate_without:.0f} req/s without tabs, {rate_with:.0f} with "
        f"{opts.tabs} open tabs (ratio {ratio:.2f}, target >= 0.9; tabs fetched the list "
        f"{sum(fetched)} times)   {'ok' if ratio >= 0.9 else 'MISSED'}"
    )
    print(
        f"live: a send reaches an open event stream in {results['live_latency_ms_median']} ms "
        f"(median; max {results['live_latency_ms_max']} ms)"
    )
    write_report(opts.output, "inbox", results)
    return 0 if page_ms < 100 and ratio >= 0.9 else 1


if __name__ == "__main__":
    sys.exit(main())
