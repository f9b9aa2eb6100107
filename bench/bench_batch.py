"""Batch sending: rate against a shell loop and the sandbox's own benchmark client, and
the memory of a large dry run.

Same run, same sandbox (a throw-away data dir):
1. ceiling: 2,000 messages like the batch's (same fields, each its own recipient and
   id_from_submitter) POSTed by the sandbox benchmark's raw-socket keep-alive client
   (bench_sandbox.py), 4 processes of 500 each;
2. `outkit send --batch` of a 2,000-row CSV (default --concurrency 4). The ceiling's
   processes are forked and warm before its clock starts, so the batch is compared with it
   by the rate it reports itself (first row read to last result journalled, connections
   included); the rate of the whole command, interpreter start-up included, is shown too
   and is what the shell loop is compared with;
   1 and 2 alternate for --rounds rounds, each starting once the sandbox is idle (its
   delivery worker has caught up), and the medians are compared;
3. a shell loop calling `outkit send` once per row, over the first --loop-rows rows (a
   loop over all 2,000 would take minutes and its rate does not depend on the count);
4. peak RSS of `outkit send --batch --dry-run` over a 200,000-row and a 20,000-row CSV;
5. against two more sandboxes started with `--rate-limit 200` (a burst of 200, then 200/s
   per key, then 429 with Retry-After), --limited-rows (3,000) rows each: adapting (no
   --rate) and with `--rate 200` against one that advertises its limit (RateLimit-Policy,
   the sandbox's default), then adapting against one started with
   `--no-rate-limit-headers`, which the batch learns of from 429s only; each run starts
   after the sandbox's bucket has refilled. The rate is the one the batch reports; the 429
   share is the summary's "N requests, M answered 429".

The client CPU per message (user + system of the batch process over accepted rows) is
reported for the unlimited runs.

Targets: batch >= 100x the shell loop's rate and >= 0.7x the ceiling; against the 200/s
limit >= 0.9x of 200 msg/s with at most 2% of requests answered 429, in all three runs;
dry-run peak RSS <= 80 MiB for 200,000 rows and within 10% of the 20,000-row figure.

    .venv/bin/python bench/bench_batch.py [--rows 2000] [--loop-rows 40] [--limited-rows 3000]

Writes bench/results/batch.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing as mp
import re
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_sandbox import build_request, read_response
from common import (
    OUTKIT,
    ROOT,
    clean_env,
    compile_like_install,
    run_child,
    start_server,
    stop,
    write_report,
)


def write_rows(path: Path, n: int, tag: str) -> None:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["to", "data.name", "subject"])
        for i in range(n):
            w.writerow([f"{tag}-{i}@example.com", f"Person {i}", f"Hello number {i}"])


def wait_idle(pid: int, quiet_for: float = 0.5, limit: float = 60.0) -> None:
    """Wait until the sandbox has used no CPU for ``quiet_for`` s: its delivery worker has
    caught up with the messages of the previous phase, so each phase starts alike."""

    def cpu() -> int:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])

    deadline = time.monotonic() + limit
    last = cpu()
    while time.monotonic() < deadline:
        time.sleep(quiet_for)
        now = cpu()
        if now == last:
            return
        last = now


def message_bodies(n: int, tag: str) -> list[bytes]:
    """The request bodies a batch of ``write_rows(n, tag)`` sends, row for row (the same
    fields, and an id_from_submitter each, as the batch's automatic ids)."""
    return [
        json.dumps(
            {
                "message": {
                    "to": f"{tag}-{i}@example.com",
                    "subject": f"Hello number {i}",
                    "data": {"name": f"Person {i}"},
                    "project": "demo",
                    "template": "welcome",
                    "type": "email",
                    "id_from_submitter": f"ceiling-{tag}-{i + 2}",
                }
            },
            separators=(",", ":"),
        ).encode()
        for i in range(n)
    ]


def ceiling_client(args: tuple) -> tuple[int, int]:
    """One keep-alive connection POSTing ``bodies`` back to back, each signed."""
    host, port, creds, bodies, start_at = args
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = bytearray()
    ok = errors = 0
    while time.time() < start_at:
        time.sleep(0.001)
    for body in bodies:
        sock.sendall(build_request("POST", host, "/v1/messages", body, creds))
        if 200 <= read_response(sock, buf) < 300:
            ok += 1
        else:
            errors += 1
    sock.close()
    return ok, errors


def ceiling(url: str, creds: dict, bodies: list[bytes], pool: Any) -> dict:
    host = url.split("/")[2]
    port = int(host.rsplit(":", 1)[1])
    start_at = time.time() + 0.2
    jobs = [(host, port, creds, bodies[i::4], start_at) for i in range(4)]
    results = pool.map(ceiling_client, jobs)
    elapsed = time.time() - start_at
    ok = sum(r[0] for r in results)
    return {"sent": ok, "errors": sum(r[1] for r in results), "rate": round(ok / elapsed, 1)}


SUMMARY = re.compile(r"\((\d+)/s\); (\d+) requests, (\d+) answered 429 \([^)]*\), (\d+) retries")


def rate_limited(opts: argparse.Namespace, base_env: dict, work: Path) -> dict:
    """Batches against sandboxes allowing ``opts.limit`` requests per second per key: one
    advertising its limit (RateLimit-Policy), one keeping it secret (429s only)."""
    sandboxes: dict[str, tuple[Any, dict]] = {}
    logs = []
    runs: dict[str, dict] = {}
    try:
        for kind, serve_extra in (("advertised", []), ("secret", ["--no-rate-limit-headers"])):
            data = work / f"limited-data-{kind}"
            logs.append((work / f"limited-{kind}.log").open("wb"))
            sbx, url = start_server(
                [*OUTKIT, "serve", "--port", "0", "--data-dir", str(data),
                 "--rate-limit", f"{opts.limit:g}", *serve_extra],
                stderr=logs[-1], env=base_env,
            )  # fmt: skip
            keys = json.loads((data / "keys.json").read_text())["keys"]
            signed = next(k for k in keys if k["signed"])
            env = {**base_env, "OUTKIT_API_URL": url, "OUTKIT_ACCESS_KEY": signed["key"],
                   "OUTKIT_ACCESS_PASSPHRASE": signed["passphrase"],
                   "OUTKIT_ACCESS_SECRET": signed["secret"]}  # fmt: skip
            sandboxes[kind] = (sbx, env)
        plan = (
            ("adaptive", "advertised", []),
            ("--rate 200", "advertised", ["--rate", f"{opts.limit:g}"]),
            ("adaptive, limit not advertised", "secret", []),
        )
        for name, kind, extra in plan:
            sbx, env = sandboxes[kind]
            wait_idle(sbx.pid)
            time.sleep(1.5)  # the sandbox's bucket refills (a burst of one second's worth)
            rows = work / f"limited-{len(runs)}.csv"
            write_rows(rows, opts.limited_rows, f"limited{len(runs)}")
            out = work / f"limited-results-{len(runs)}.jsonl"
            child = run_child(
                [*OUTKIT, "send", "--batch", str(rows), "--project", "demo",
                 "--template", "welcome", "--results", str(out),
                 "--journal", str(work / f"limited-journal-{len(runs)}"), *extra],
                env,
            )  # fmt: skip
            accepted = sum(1 for line in out.open() if '"status": "accepted"' in line)
            found = SUMMARY.search(child.stderr.decode())
            rate, requests, throttled, retries = (
                (float(found[1]), int(found[2]), int(found[3]), int(found[4]))
                if found else (0.0, 0, 0, 0)
            )  # fmt: skip
            runs[name] = {
                "accepted": accepted,
                "exit": child.returncode,
                "seconds": round(child.wall, 2),
                "rate": rate,
                "vs_limit": round(rate / opts.limit, 3),
                "requests": requests,
                "answered_429": throttled,
                "share_429": round(throttled / requests, 4) if requests else 1.0,
                "retries": retries,
                "cpu_us_per_message": round(child.cpu / max(1, accepted) * 1e6),
                "summary": child.stderr.decode().strip().splitlines()[-1:],
            }
    finally:
        for sbx, _ in sandboxes.values():
            stop(sbx)
        for log in logs:
            log.close()
    return {"limit": opts.limit, "rows": opts.limited_rows, "runs": runs}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--loop-rows", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--limited-rows", type=int, default=3000)
    parser.add_argument("--limit", type=float, default=200.0)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "batch.json")
    opts = parser.parse_args()

    env = compile_like_install(clean_env())
    work = Path(tempfile.mkdtemp(prefix="outkit-bench-batch-"))
    log = (work / "serve.log").open("wb")
    sbx, url = start_server(
        [*OUTKIT, "serve", "--port", "0", "--data-dir", str(work / "data")], stderr=log, env=env
    )
    keys = json.loads((work / "data" / "keys.json").read_text())["keys"]
    signed = next(k for k in keys if k["signed"])
    creds = {"key": signed["key"], "passphrase": signed["passphrase"], "secret": signed["secret"]}
    env.update(
        OUTKIT_API_URL=url,
        OUTKIT_ACCESS_KEY=creds["key"],
        OUTKIT_ACCESS_PASSPHRASE=creds["passphrase"],
        OUTKIT_ACCESS_SECRET=creds["secret"],
        OUTKIT_CONFIG=str(work / "config.toml"),
    )
    results: dict = {}
    try:
        rows = work / "rows.csv"
        ceilings, batches = [], []
        with mp.get_context("fork").Pool(4) as pool:
            for n in range(opts.rounds):
                wait_idle(sbx.pid)
                bodies = message_bodies(opts.rows, f"ceiling{n}")
                ceilings.append(ceiling(url, creds, bodies, pool))
                wait_idle(sbx.pid)
                write_rows(rows, opts.rows, f"batch{n}")
                out = work / f"results-{n}.jsonl"
                child = run_child(
                    [*OUTKIT, "send", "--batch", str(rows), "--project", "demo",
                     "--template", "welcome", "--results", str(out),
                     "--journal", str(work / f"journal-{n}")],
                    env,
                )  # fmt: skip
                accepted = sum(1 for line in out.open() if '"status": "accepted"' in line)
                # the rate the batch reports: first row read to last result journalled
                reported = re.search(r"\((\d+)/s\)", child.stderr.decode())
                batches.append(
                    {
                        "accepted": accepted,
                        "exit": child.returncode,
                        "cpu_us_per_message": round(child.cpu / max(1, accepted) * 1e6),
                        "seconds": round(child.wall, 3),
                        "wall_rate": round(accepted / child.wall, 1),
                        "rate": float(reported.group(1)) if reported else 0.0,
                        "peak_rss_mib": round(child.rss_mib, 1),
                    }
                )
        results["ceiling_runs"] = ceilings
        results["ceiling_rate"] = statistics.median(c["rate"] for c in ceilings)
        results["batch_runs"] = batches
        results["batch"] = {
            "rows": opts.rows,
            "accepted": min(b["accepted"] for b in batches),
            "exit": max(b["exit"] for b in batches),
            "seconds": statistics.median(b["seconds"] for b in batches),
            "rate": statistics.median(b["rate"] for b in batches),
            "wall_rate": statistics.median(b["wall_rate"] for b in batches),
            "peak_rss_mib": max(b["peak_rss_mib"] for b in batches),
            "cpu_us_per_message": statistics.median(b["cpu_us_per_message"] for b in batches),
        }
        wait_idle(sbx.pid)

        loop_rows = work / "loop.txt"
        loop_rows.write_text("".join(f"loop-{i}@example.com\n" for i in range(opts.loop_rows)))
        script = (
            'while read -r to; do "$@" send --project demo --template welcome --to "$to" '
            "-q >/dev/null || exit 1; done < " + str(loop_rows)
        )
        loop = run_child(["bash", "-c", script, "loop", *OUTKIT], env)
        results["shell_loop"] = {
            "rows": opts.loop_rows,
            "exit": loop.returncode,
            "seconds": round(loop.wall, 3),
            "rate": round(opts.loop_rows / loop.wall, 1),
        }

        memory = {}
        for n in (20_000, 200_000):
            big = work / f"dry-{n}.csv"
            write_rows(big, n, "dry")
            dry = run_child(
                [*OUTKIT, "send", "--batch", str(big), "--dry-run", "--project", "demo",
                 "--template", "welcome"],
                env, capture=False,
            )  # fmt: skip
            memory[n] = {
                "exit": dry.returncode,
                "seconds": round(dry.wall, 2),
                "peak_rss_mib": round(dry.rss_mib, 1),
            }
        results["dry_run_memory"] = memory
        results["rate_limited"] = rate_limited(opts, env, work)
    finally:
        stop(sbx)
        log.close()

    batch_rate = results["batch"]["rate"]
    # the shell loop pays start-up on every row, so it is compared by whole commands
    vs_loop = results["batch"]["wall_rate"] / results["shell_loop"]["rate"]
    vs_ceiling = batch_rate / results["ceiling_rate"]
    small, large = memory[20_000]["peak_rss_mib"], memory[200_000]["peak_rss_mib"]
    growth = large / small - 1
    checks = {
        "all rows accepted": results["batch"]["accepted"] == opts.rows
        and results["batch"]["exit"] == 0,
        "batch >= 100x shell loop": vs_loop >= 100,
        "batch >= 0.7x ceiling": vs_ceiling >= 0.7,
        "dry run 200k <= 80 MiB": large <= 80 and memory[200_000]["exit"] == 0,
        "dry run 200k within 10% of 20k": growth <= 0.10,
    }
    limited = results["rate_limited"]
    for name, run in limited["runs"].items():
        checks[f"{name}: >= 0.9x of {opts.limit:g}/s"] = run["vs_limit"] >= 0.9
        checks[f"{name}: <= 2% answered 429"] = run["share_429"] <= 0.02
        checks[f"{name}: all rows accepted"] = run["accepted"] == opts.limited_rows
    results.update(
        vs_shell_loop=round(vs_loop, 1),
        vs_ceiling=round(vs_ceiling, 3),
        dry_run_growth=round(growth, 3),
        checks=checks,
        passed=all(checks.values()),
    )
    b, s = results["batch"], results["shell_loop"]
    print(f"ceiling (sandbox bench client, 4 conns): {results['ceiling_rate']:8.0f} msg/s "
          f"(median of {opts.rounds}: {[c['rate'] for c in ceilings]})")  # fmt: skip
    print(f"outkit send --batch ({b['rows']} rows):    {b['rate']:8.0f} msg/s sending "
          f"(runs {[r['rate'] for r in batches]}); {b['wall_rate']:.0f} msg/s for the whole "
          f"command ({b['seconds']:.2f} s with start-up), "
          f"peak {b['peak_rss_mib']} MiB")  # fmt: skip
    print(f"shell loop of outkit send ({s['rows']} rows): {s['rate']:8.1f} msg/s")
    print(f"client CPU per message: {b['cpu_us_per_message']} us")
    print(f"batch / shell loop: {vs_loop:.1f}x (target >= 100)")
    print(f"batch / ceiling:    {vs_ceiling:.2f}x (target >= 0.7)")
    print(f"dry run peak RSS: 20k rows {small} MiB, 200k rows {large} MiB "
          f"({growth:+.1%}; targets <= 80 MiB, <= +10%)")  # fmt: skip
    for name, run in limited["runs"].items():
        print(f"{name} against --rate-limit {opts.limit:g} ({opts.limited_rows} rows): "
              f"{run['rate']:.0f} msg/s = {run['vs_limit']:.2f}x the limit, "
              f"{run['answered_429']} of {run['requests']} requests answered 429 "
              f"({run['share_429']:.1%}), {run['retries']} retries")  # fmt: skip
    for name, ok in checks.items():
        print(f"  {'ok    ' if ok else 'MISSED'} {name}")
    write_report(opts.output, "batch", results)
    return 0 if results["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
