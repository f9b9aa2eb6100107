"""Soak: concurrent `outkit send --batch` processes against one faulty sandbox.

One sandbox with --rate-limit and --fail-rate; CLIENTS client threads each run
`outkit send --batch` on CSVs of their own, back to back, until SECONDS have passed (the
first CSV of each is sized to last most of the run at the rate limit, so the first
processes live through it). Then it checks, from the sandbox's SQLite file and the batch
results:

- every row was accepted exactly once (one stored message per recipient, with the id the
  batch reported), and every batch exited 0;
- the sandbox answers as at the start: a message fetched before the load is the same
  after it, and a fresh `send --wait` is delivered;

and reports requests per second and 429/503 counts (from the sandbox's log lines in the
load window), and the RSS (/proc/PID/status VmRSS) of the sandbox at start and end and of
every batch process sampled while it ran.

    .venv/bin/python bench/soak.py [--seconds 60] [--clients 8] [--rate-limit 150]
        [--fail-rate 0.05] [--work DIR] [--output bench/results/soak.json]

Exit status 0 when every check passed. Writes bench/results/soak.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import OUTKIT, ROOT, start_server, stop, write_report

TAG = "soak"
SAMPLE_EVERY = 0.5  # seconds between RSS samples
STARTED_AFTER = 3.0  # a batch process's "start" RSS is its first sample after this


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def mib(kib: float | None) -> float | None:
    return None if kib is None else round(kib / 1024, 1)


@dataclass
class BatchRun:
    client: int
    batch: int
    rows: int
    csv: Path
    results: Path
    started: float = 0.0
    seconds: float = 0.0
    exit: int | None = None
    rss: list[int] = field(default_factory=list)  # KiB, sampled every SAMPLE_EVERY s
    rss_at: list[float] = field(default_factory=list)  # seconds since start, per sample
    stderr_tail: str = ""

    def start_rss(self) -> int | None:
        """RSS once started up and sending: the first sample after STARTED_AFTER s (eight
        processes importing at once on two cores take more than a second to get going)."""
        pairs = zip(self.rss, self.rss_at, strict=True)
        return next((k for k, t in pairs if t >= STARTED_AFTER), None)

    def summary(self) -> dict[str, Any]:
        return {
            "client": self.client,
            "batch": self.batch,
            "rows": self.rows,
            "exit": self.exit,
            "seconds": round(self.seconds, 2),
            "rss_mib_start": mib(self.start_rss()),
            "rss_mib_end": mib(self.rss[-1]) if self.rss else None,
            "rss_mib_peak": mib(max(self.rss)) if self.rss else None,
            "rss_samples": len(self.rss),
        }


def write_rows(path: Path, client: int, batch: int, n: int) -> None:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["to", "data.name"])
        for i in range(n):
            w.writerow([f"{TAG}-c{client}-b{batch}-r{i}@example.com", f"Person {i}"])


def run_batch(run: BatchRun, env: dict[str, str], opts: argparse.Namespace) -> None:
    cmd = [
        *OUTKIT, "send", "--batch", str(run.csv), "--project", "demo", "--template", "welcome",
        "--results", str(run.results), "--concurrency", str(opts.concurrency),
        "--retries", str(opts.retries),
    ]  # fmt: skip
    run.started = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err_chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: err_chunks.append(proc.stderr.read()))  # type: ignore[union-attr]
    reader.start()
    while True:
        kib = rss_kib(proc.pid)  # None once it has exited (a zombie has no VmRSS)
        if kib is not None:
            run.rss.append(kib)
            run.rss_at.append(time.monotonic() - run.started)
        try:
            proc.wait(SAMPLE_EVERY)  # the next batch starts as soon as this one ends
            break
        except subprocess.TimeoutExpired:
            continue
    reader.join()
    run.exit = proc.returncode
    run.seconds = time.monotonic() - run.started
    run.stderr_tail = b"".join(err_chunks).decode("utf-8", "replace")[-500:]


def client_loop(
    client: int, deadline: float, env: dict[str, str], opts: argparse.Namespace,
    work: Path, runs: list[BatchRun], lock: threading.Lock,
) -> None:  # fmt: skip
    per_second = opts.rate_limit / opts.clients  # this client's share of the limit
    batch = 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0.5:
            return
        # sized to end a little before the deadline at the rate limit; later ones fill up
        rows = max(opts.min_rows, math.ceil(per_second * left * 0.8))
        run = BatchRun(
            client, batch, rows, work / f"c{client}-b{batch}.csv",
            work / f"c{client}-b{batch}.results.jsonl",
        )  # fmt: skip
        write_rows(run.csv, client, batch, rows)
        with lock:
            runs.append(run)
        run_batch(run, env, opts)
        batch += 1


def start_sandbox(
    data: Path, log_path: Path, opts: argparse.Namespace
) -> tuple[subprocess.Popen[bytes], str]:
    cmd = [
        *OUTKIT, "serve", "--port", "0", "--data-dir", str(data),
        "--rate-limit", str(opts.rate_limit), "--fail-rate", str(opts.fail_rate),
    ]  # fmt: skip
    with log_path.open("ab") as log:
        return start_server(cmd, stderr=log)


def outkit(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    proc = subprocess.run(OUTKIT + list(args), env=env, capture_output=True, timeout=120)
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


def probe(env: dict[str, str], to: str) -> dict[str, Any]:
    """A fresh send, followed until delivered; returns the message or raises.

    The sandbox's random 503s answer POSTs too, and a 5xx to a POST is "maybe sent"
    (exit 8, never retried blindly: docs/network.md): do what a user would, look the
    message up by its id_from_submitter and send again only when it is not there."""
    ref = f"soak-probe-{uuid.uuid4()}"
    for _ in range(5):
        code, out, err = outkit(
            env, "send", "--project", "demo", "--template", "welcome", "--to", to,
            "--data", "name=Probe", "--wait", "--json", "--retries", "20",
            "--id-from-submitter", ref,
        )  # fmt: skip
        if code == 0:
            return json.loads(out)
        if code != 8:
            break
        code, out, err = outkit(env, "get", "--id-from-submitter", ref, "--json",
                                "--retries", "20")  # fmt: skip
        found = json.loads(out) if code == 0 else []
        if found:
            code, out, err = outkit(env, "get", found[0]["id"], "--wait", "--json",
                                    "--retries", "20")  # fmt: skip
            if code == 0:
                return json.loads(out)
            break
    raise RuntimeError(f"probe send to {to} exited {code}: {err.strip()}")


def fetch(env: dict[str, str], message_id: str) -> dict[str, Any] | str:
    code, out, err = outkit(env, "get", message_id, "--json", "--retries", "20")
    return json.loads(out) if code == 0 else f"exit {code}: {err.strip()}"


def log_window(log_path: Path, start: int, end: int) -> Counter[str]:
    """Requests in the log between two byte offsets, by status code."""
    with log_path.open("rb") as fh:
        fh.seek(start)
        text = fh.read(end - start).decode("utf-8", "replace")
    statuses: Counter[str] = Counter()
    for line in text.splitlines():
        parts = line.split()
        # request lines: METHOD PATH STATUS 1.2ms
        if len(parts) == 4 and parts[0].isupper() and parts[2].isdigit():
            statuses[parts[2]] += 1
    return statuses


def stored(db: Path) -> list[tuple[str, str, int]]:
    """(to, id, done) of every soak message, read from the sandbox's SQLite file."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute(
            "SELECT json_extract(doc, '$.to'), id, done FROM messages "
            "WHERE json_extract(doc, '$.to') LIKE ?",
            (f"{TAG}-c%",),
        ).fetchall()
    finally:
        conn.close()


def wait_all_done(db: Path, limit: float = 120.0) -> int:
    """Wait until the delivery worker has finished every soak message; returns the
    number still not done when the limit ran out."""
    deadline = time.monotonic() + limit
    while True:
        left = sum(1 for _, _, done in stored(db) if not done)
        if left == 0 or time.monotonic() > deadline:
            return left
        time.sleep(0.25)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=4, help="per batch process")
    parser.add_argument("--rate-limit", type=float, default=150.0)
    parser.add_argument("--fail-rate", type=float, default=0.05)
    parser.add_argument("--retries", type=int, default=100, help="per row, for each batch")
    parser.add_argument("--min-rows", type=int, default=10)
    parser.add_argument("--work", type=Path, help="keep the data here (default: a temp dir)")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "soak.json")
    opts = parser.parse_args(argv)

    work = opts.work or Path(tempfile.mkdtemp(prefix="outkit-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    data, log_path = work / "data", work / "serve.log"
    sandbox, url = start_sandbox(data, log_path, opts)
    report: dict[str, Any] = {}
    try:
        keys = json.loads((data / "keys.json").read_text())["keys"]
        signed = next(k for k in keys if k["signed"])
        env = {k: v for k, v in os.environ.items() if not k.startswith("OUTKIT_")}
        env.update(
            OUTKIT_API_URL=url,
            OUTKIT_ACCESS_KEY=signed["key"],
            OUTKIT_ACCESS_PASSPHRASE=signed["passphrase"],
            OUTKIT_ACCESS_SECRET=signed["secret"],
            OUTKIT_CONFIG=str(work / "config.toml"),  # no profile: the env above only
        )
        before_msg = probe(env, "probe-before@example.com")
        before = fetch(env, before_msg["id"])
        sandbox_rss_start = rss_kib(sandbox.pid)

        runs: list[BatchRun] = []
        lock = threading.Lock()
        sandbox_rss: list[int] = []
        log_start = log_path.stat().st_size
        started = time.monotonic()
        deadline = started + opts.seconds
        threads = [
            threading.Thread(target=client_loop, args=(c, deadline, env, opts, work, runs, lock))
            for c in range(opts.clients)
        ]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            kib = rss_kib(sandbox.pid)
            if kib is not None:
                sandbox_rss.append(kib)
            time.sleep(SAMPLE_EVERY)
        for t in threads:
            t.join()
        window = time.monotonic() - started
        log_end = log_path.stat().st_size

        # --- what the batches said, what the sandbox holds --------------------------------
        reported: dict[str, str] = {}  # recipient -> id the batch reported
        bad_results: list[str] = []
        rows_total = 0
        for run in runs:
            rows_total += run.rows
            recipients = [row["to"] for row in csv.DictReader(run.csv.open(newline=""))]
            lines = [json.loads(x) for x in run.results.read_text().splitlines() if x]
            by_row = {r["row"]: r for r in lines}
            for line_no, to in enumerate(recipients, start=2):  # line 1 is the header
                r = by_row.get(line_no)
                if r is None or r.get("status") != "accepted" or not r.get("id"):
                    bad_results.append(f"{run.csv.name}:{line_no} {r}")
                else:
                    reported[to] = r["id"]
        not_done = wait_all_done(data / "sandbox.sqlite3")
        held = stored(data / "sandbox.sqlite3")
        per_to = Counter(to for to, _, _ in held)
        held_ids = {to: mid for to, mid, _ in held}
        duplicates = sorted(to for to, n in per_to.items() if n > 1)
        missing = sorted(set(reported) - set(per_to))
        unexpected = sorted(set(per_to) - set(reported))
        wrong_id = sorted(to for to in reported if to in held_ids and held_ids[to] != reported[to])

        after = fetch(env, before_msg["id"])
        fresh_ok, fresh_error = True, None
        try:
            fresh = probe(env, "probe-after@example.com")
            fresh_ok = fresh.get("status") == "delivered"
        except RuntimeError as exc:
            fresh_ok, fresh_error = False, str(exc)
        time.sleep(min(1.0, opts.seconds / 10))  # let memory settle before the end figure
        sandbox_rss_end = rss_kib(sandbox.pid)
        alive = sandbox.poll() is None

        statuses = log_window(log_path, log_start, log_end)
        requests = sum(statuses.values())
        first_batches = [r for r in runs if r.batch == 0 and r.start_rss() is not None]
        checks = {
            "every batch exited 0": all(r.exit == 0 for r in runs),
            "every row reported accepted with an id": not bad_results,
            "every row stored exactly once": not duplicates and not missing and not unexpected,
            "stored ids are the reported ids": not wrong_id,
            "every message done": not_done == 0,
            "message fetched before == after": before == after,
            "fresh send delivered after the load": fresh_ok,
            "sandbox still running": alive,
            "faults were served (429 and 503 seen)": statuses["429"] > 0 and statuses["503"] > 0,
        }
        report = {
            "options": {
                "seconds": opts.seconds,
                "clients": opts.clients,
                "concurrency_per_client": opts.concurrency,
                "rate_limit": opts.rate_limit,
                "fail_rate": opts.fail_rate,
                "retries_per_row": opts.retries,
            },
            "window_seconds": round(window, 2),
            "batches": len(runs),
            "rows": rows_total,
            "accepted_once": sum(1 for to, n in per_to.items() if n == 1 and to in reported),
            "duplicates": duplicates[:20],
            "missing": missing[:20],
            "unexpected": unexpected[:20],
            "bad_results": bad_results[:20],
            "requests": requests,
            "requests_per_second": round(requests / window, 1),
            "accepted_per_second": round(len(reported) / window, 1),
            "status_counts": dict(sorted(statuses.items())),
            "retries": {"429": statuses["429"], "503": statuses["503"]},
            "sandbox_rss_mib": {
                "start": mib(sandbox_rss_start),
                "end": mib(sandbox_rss_end),
                "peak": mib(max(sandbox_rss, default=None)),
            },
            "cli_rss_mib": {
                # the first batch of each client runs for most of the window
                "start_max": max((mib(r.start_rss()) for r in first_batches), default=None),
                "end_max": max((mib(r.rss[-1]) for r in first_batches), default=None),
                "peak_max": max((mib(max(r.rss)) for r in runs if r.rss), default=None),
                "longest_batch_seconds": max((round(r.seconds, 1) for r in runs), default=0),
            },
            "batch_runs": [r.summary() for r in runs],
            "failed_batches_stderr": [r.stderr_tail for r in runs if r.exit != 0][:5],
            "probe": {"before_equals_after": before == after, "fresh_error": fresh_error},
            "checks": checks,
            "passed": all(checks.values()),
            "command": "python bench/soak.py " + " ".join(sys.argv[1:] if argv is None else argv),
        }
    finally:
        stop(sandbox)
    write_report(opts.output, "soak", report)
    short = {k: report[k] for k in ("rows", "accepted_once", "requests_per_second",
                                     "retries", "sandbox_rss_mib", "cli_rss_mib")}  # fmt: skip
    print(json.dumps(short, indent=2))
    for name, ok in report["checks"].items():
        print(f"{'ok  ' if ok else 'FAIL'} {name}")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
