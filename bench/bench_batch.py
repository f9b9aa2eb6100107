"""Batch sending: rate against a shell loop and the sandbox's own benchmark client, and
the memory of a large dry run.

Same run, same sandbox (a throw-away data dir):
1. ceiling: POST /v1/messages from the sandbox benchmark's raw-socket keep-alive clients
   (bench_sandbox.py), 4 of them, for a few seconds;
2. `outkit send --batch` of a 2,000-row CSV (default --concurrency 4), wall time of the
   whole command, start-up included;
3. a shell loop calling `outkit send` once per row, over the first --loop-rows rows (a
   loop over all 2,000 would take minutes and its rate does not depend on the count);
4. peak RSS of `outkit send --batch --dry-run` over a 200,000-row and a 20,000-row CSV.

Targets: batch >= 15x the shell loop's rate and >= 0.7x the ceiling; dry-run peak RSS
<= 80 MiB for 200,000 rows and within 10% of the 20,000-row figure.

    .venv/bin/python bench/bench_batch.py [--rows 2000] [--loop-rows 40]

Writes bench/results/batch.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing as mp
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from bench_sandbox import POST_BODY, measure, start_server, stop  # noqa: E402

OUTKIT = [sys.executable, "-m", "outkit_cli"]


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


def timed(cmd: list[str], env: dict[str, str], **kw) -> tuple[float, int, int]:
    """(wall seconds, exit status, peak RSS in KiB) of one child process."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, **kw)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - started, proc.returncode, usage.ru_maxrss


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--loop-rows", type=int, default=40)
    parser.add_argument("--ceiling-seconds", type=float, default=3.0)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "batch.json")
    opts = parser.parse_args()

    # Users run installed, byte-compiled code; with PYTHONDONTWRITEBYTECODE set (as on some
    # CI machines) every child would compile outkit_cli from source instead.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "outkit_cli")], check=True)
    work = Path(tempfile.mkdtemp(prefix="outkit-bench-batch-"))
    log = (work / "serve.log").open("wb")
    sbx, url = start_server(
        [*OUTKIT, "serve", "--port", "0", "--data-dir", str(work / "data")], log
    )
    keys = json.loads((work / "data" / "keys.json").read_text())["keys"]
    signed = next(k for k in keys if k["signed"])
    creds = {"key": signed["key"], "passphrase": signed["passphrase"], "secret": signed["secret"]}
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTKIT_")}
    env.update(
        OUTKIT_API_URL=url,
        OUTKIT_ACCESS_KEY=creds["key"],
        OUTKIT_ACCESS_PASSPHRASE=creds["passphrase"],
        OUTKIT_ACCESS_SECRET=creds["secret"],
        OUTKIT_CONFIG=str(work / "config.toml"),
    )
    results: dict = {}
    try:
        with mp.get_context("fork").Pool(4) as pool:
            ceiling = measure(
                url, "POST", "/v1/messages", POST_BODY, creds, 4, opts.ceiling_seconds, pool
            )
        results["ceiling_rate"] = ceiling["rate"]
        wait_idle(sbx.pid)

        rows = work / "rows.csv"
        write_rows(rows, opts.rows, "batch")
        wall, code, rss = timed(
            [*OUTKIT, "send", "--batch", str(rows), "--project", "demo", "--template", "welcome",
             "--results", str(work / "results.jsonl")],
            env, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        accepted = sum(
            1 for line in (work / "results.jsonl").open() if '"status": "accepted"' in line
        )
        wait_idle(sbx.pid)
        results["batch"] = {
            "rows": opts.rows,
            "accepted": accepted,
            "exit": code,
            "seconds": round(wall, 3),
            "rate": round(accepted / wall, 1),
            "peak_rss_mib": round(rss / 1024, 1),
        }

        loop_rows = work / "loop.txt"
        loop_rows.write_text("".join(f"loop-{i}@example.com\n" for i in range(opts.loop_rows)))
        script = (
            'while read -r to; do "$@" send --project demo --template welcome --to "$to" '
            "-q >/dev/null || exit 1; done < " + str(loop_rows)
        )
        wall, code, _ = timed(["bash", "-c", script, "loop", *OUTKIT], env)
        results["shell_loop"] = {
            "rows": opts.loop_rows,
            "exit": code,
            "seconds": round(wall, 3),
            "rate": round(opts.loop_rows / wall, 1),
        }

        memory = {}
        for n in (20_000, 200_000):
            big = work / f"dry-{n}.csv"
            write_rows(big, n, "dry")
            wall, code, rss = timed(
                [*OUTKIT, "send", "--batch", str(big), "--dry-run", "--project", "demo",
                 "--template", "welcome"],
                env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            memory[n] = {
                "exit": code,
                "seconds": round(wall, 2),
                "peak_rss_mib": round(rss / 1024, 1),
            }
        results["dry_run_memory"] = memory
    finally:
        stop(sbx)
        log.close()

    batch_rate = results["batch"]["rate"]
    vs_loop = batch_rate / results["shell_loop"]["rate"]
    vs_ceiling = batch_rate / results["ceiling_rate"]
    small, large = memory[20_000]["peak_rss_mib"], memory[200_000]["peak_rss_mib"]
    growth = large / small - 1
    checks = {
        "all rows accepted": results["batch"]["accepted"] == opts.rows
        and results["batch"]["exit"] == 0,
        "batch >= 15x shell loop": vs_loop >= 15,
        "batch >= 0.7x ceiling": vs_ceiling >= 0.7,
        "dry run 200k <= 80 MiB": large <= 80 and memory[200_000]["exit"] == 0,
        "dry run 200k within 10% of 20k": growth <= 0.10,
    }
    results.update(
        vs_shell_loop=round(vs_loop, 1),
        vs_ceiling=round(vs_ceiling, 3),
        dry_run_growth=round(growth, 3),
        checks=checks,
        passed=all(checks.values()),
        time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        cpus=os.cpu_count(),
        python=platform.python_version(),
    )
    b, s = results["batch"], results["shell_loop"]
    print(f"ceiling (sandbox bench client, 4 conns): {results['ceiling_rate']:8.0f} msg/s")
    print(f"outkit send --batch ({b['rows']} rows):    {b['rate']:8.0f} msg/s "
          f"({b['seconds']:.2f} s, peak {b['peak_rss_mib']} MiB)")  # fmt: skip
    print(f"shell loop of outkit send ({s['rows']} rows): {s['rate']:8.1f} msg/s")
    print(f"batch / shell loop: {vs_loop:.1f}x (target >= 15)")
    print(f"batch / ceiling:    {vs_ceiling:.2f}x (target >= 0.7)")
    print(f"dry run peak RSS: 20k rows {small} MiB, 200k rows {large} MiB "
          f"({growth:+.1%}; targets <= 80 MiB, <= +10%)")  # fmt: skip
    for name, ok in checks.items():
        print(f"  {'ok    ' if ok else 'MISSED'} {name}")
    opts.output.parent.mkdir(parents=True, exist_ok=True)
    opts.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {opts.output}")
    return 0 if results["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
