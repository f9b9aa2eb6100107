"""Startup cost of the commands people run most: `outkit --version`, `outkit --help` and
`outkit sign ...`, against `python -c "import click"` measured in the same run.

Targets (issue 10): median wall time <= 1.2x the click baseline, peak RSS <= 25 MiB, and
neither `requests` nor `rich` imported, on a regular install: the checkout is built into a
wheel and installed, byte-compiled, into a fresh venv, as `pipx install` would. Runs are
interleaved (one of each command per round) so that machine noise hits every command alike;
each child's own peak RSS comes from `os.wait4`, not from RUSAGE_CHILDREN, which only ever
reports the largest child so far.

    .venv/bin/python bench/bench_startup.py [--rounds 30] [--out bench/results/startup.json]

Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, regular_install, run_child, write_report

TIME_RATIO_TARGET = 1.2
RSS_TARGET_MIB = 25.0
HEAVY = ("requests", "rich", "urllib3")
SIGN_ARGS = [
    "sign", "POST", "/v1/messages",
    "--body", '{"message":{"type":"email","to":"some.email@example.com"}}',
    "--secret", "s", "--timestamp", "1",
]  # fmt: skip


def commands(python: str, script: str) -> dict[str, list[str]]:
    """name -> argv. `outkit ...` is the console script users run; `python -m` for reference."""
    return {
        "baseline: python -c import click": [python, "-c", "import click"],
        "outkit --version": [script, "--version"],
        "outkit --help": [script, "--help"],
        "outkit sign ...": [script, *SIGN_ARGS],
        "python -m outkit_cli --version": [python, "-m", "outkit_cli", "--version"],
        "python -m outkit_cli sign ...": [python, "-m", "outkit_cli", *SIGN_ARGS],
    }


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (user + system) and this child's own peak RSS in MiB."""
    child = run_child(argv, env)
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({child.returncode}): {child.stderr.decode()}")
    # CPU time is far less disturbed than wall time when other work shares the machine
    return child.wall, child.cpu, child.rss_mib


def heavy_imports(argv: list[str], python: str, env: dict[str, str]) -> list[str]:
    """Modules from HEAVY that `python -X importtime` shows for this command."""
    # the console script is a Python file: run it with the same interpreter and -X importtime
    argv = [python, "-X", "importtime", *(argv[1:] if argv[0] == python else argv)]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    names = {
        line.split("|")[-1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:")
    }
    return sorted(n for n in names if n.split(".")[0] in HEAVY)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "startup.json")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        bin_dir = regular_install(Path(tmp) / "install")
        python, script = str(bin_dir / "python"), str(bin_dir / "outkit")
        cmds = commands(python, script)
        # the default config location, as users have it, but in an empty temp HOME: no real
        # profile is read and nothing is written
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OUTKIT_", "XDG_"))}
        env.update(HOME=tmp, XDG_CONFIG_HOME=str(Path(tmp) / ".config"), NO_COLOR="1")
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        for _ in range(args.warmup):
            for argv in cmds.values():
                run_once(argv, env)
        walls: dict[str, list[float]] = {name: [] for name in cmds}
        cpus: dict[str, list[float]] = {name: [] for name in cmds}
        rss: dict[str, list[float]] = {name: [] for name in cmds}
        for _ in range(args.rounds):
            for name, argv in cmds.items():
                wall, cpu, peak = run_once(argv, env)
                walls[name].append(wall)
                cpus[name].append(cpu)
                rss[name].append(peak)
        heavy = {name: heavy_imports(argv, python, env) for name, argv in cmds.items()}

    baseline_name = next(iter(cmds))
    baseline = statistics.median(walls[baseline_name])
    baseline_cpu = statistics.median(cpus[baseline_name])
    rows = []
    ok = True
    for name in cmds:
        median = statistics.median(walls[name])
        ratio = median / baseline
        peak = max(rss[name])
        is_target = name.startswith("outkit ")  # what users run; `python -m` is for reference
        passed = ratio <= TIME_RATIO_TARGET and peak <= RSS_TARGET_MIB and not heavy[name]
        if is_target and not passed:
            ok = False
        rows.append(
            {
                "command": name,
                "median_ms": round(median * 1000, 1),
                "p90_ms": round(sorted(walls[name])[int(0.9 * (len(walls[name]) - 1))] * 1000, 1),
                "ratio_to_baseline": round(ratio, 2),
                "cpu_median_ms": round(statistics.median(cpus[name]) * 1000, 1),
                "cpu_ratio_to_baseline": round(statistics.median(cpus[name]) / baseline_cpu, 2),
                "peak_rss_mib": round(peak, 1),
                "heavy_imports": heavy[name],
                "target": is_target,
                "pass": passed if name != baseline_name else None,
            }
        )

    header = (
        f"{'command':<32} {'median':>8} {'p90':>8} {'ratio':>6} {'cpu':>8} {'cpu ratio':>9} "
        f"{'peak RSS':>9}  result"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        if r["pass"] is None:
            result = "baseline"
        else:
            result = ("PASS" if r["pass"] else "FAIL") + ("" if r["target"] else " (reference)")
        if r["heavy_imports"]:
            result += f" imports {', '.join(r['heavy_imports'])}"
        print(
            f"{r['command']:<32} {r['median_ms']:>6.1f}ms {r['p90_ms']:>6.1f}ms "
            f"{r['ratio_to_baseline']:>5.2f}x {r['cpu_median_ms']:>6.1f}ms "
            f"{r['cpu_ratio_to_baseline']:>8.2f}x {r['peak_rss_mib']:>6.1f}MiB  {result}"
        )
    print(
        f"\ntargets: median wall time <= {TIME_RATIO_TARGET}x baseline, "
        f"peak RSS <= {RSS_TARGET_MIB} MiB, "
        f"no {'/'.join(HEAVY)} imports; {args.rounds} interleaved rounds, {os.cpu_count()} CPUs"
    )

    write_report(
        args.out,
        "startup",
        {
            "rounds": args.rounds,
            "targets": {"ratio": TIME_RATIO_TARGET, "peak_rss_mib": RSS_TARGET_MIB},
            "results": rows,
            "pass": ok,
        },
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
