"""`outkit get ID` against HTTPie fetching the same message from the same sandbox.

HTTPie (`http GET URL` with the unsigned key's headers, `Outkit-Access-Secret` included) is
what a person would otherwise type; `outkit get ID` uses the same unsigned key through a
profile. Both run with stdout piped (as in a script), in interleaved rounds so machine noise
hits both alike; each child's own peak RSS comes from `os.wait4`.

Targets (issues 4 and 11): median wall time of `outkit get ID` <= 0.6x HTTPie's,
peak RSS <= 45 MiB.
Rows marked "reference" (--json, a signed key) are shown for information.

    .venv/bin/python bench/bench_get.py [--rounds 20] [--out bench/results/get.json]

Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
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

sys.path.insert(0, str(ROOT))

TIME_RATIO_TARGET = 0.6
RSS_TARGET_MIB = 45.0
HTTPIE = "http GET URL (HTTPie, unsigned key)"
TARGET = "outkit get ID"


def run_once(argv: list[str], env: dict[str, str], expect: str) -> tuple[float, float]:
    """Wall seconds and this child's own peak RSS in MiB; the output must contain ``expect``."""
    child = run_child(argv, env)
    if child.returncode != 0 or expect.encode() not in child.stdout:
        raise SystemExit(
            f"{argv[0]} {argv[1]} failed ({child.returncode}): {child.stderr.decode()[:500]}"
        )
    return child.wall, child.rss_mib


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "get.json")
    args = parser.parse_args()

    from outkit_cli.config import save_profile

    bindir = Path(sys.executable).parent
    outkit, http = str(bindir / "outkit"), str(bindir / "http")
    if not Path(http).exists():
        raise SystemExit(f"HTTPie is not installed at {http}: run `make install`")

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        base_env = compile_like_install(clean_env())
        base_env.update(
            NO_COLOR="1",
            OUTKIT_CONFIG=str(tmp / "config.toml"),  # never the user's own config
            HTTPIE_CONFIG_DIR=str(tmp / "httpie"),  # nor HTTPie's
        )
        server, url = start_server(
            [*OUTKIT, "serve", "--port", "0", "--data-dir", str(tmp / "data")], env=base_env
        )
        try:
            keys = json.loads((tmp / "data" / "keys.json").read_text())["keys"]
            signed = next(k for k in keys if k["signed"])
            unsigned = next(k for k in keys if not k["signed"])
            config = tmp / "config.toml"
            for name, key in (("unsigned", unsigned), ("signed", signed)):
                save_profile(
                    config,
                    name,
                    {
                        "key": key["key"],
                        "passphrase": key["passphrase"],
                        "secret": key["secret"],
                        "signed": key["signed"],
                        "api_url": url,
                        "project": "demo",
                    },
                )
            sent = subprocess.run(
                [outkit, "-p", "signed", "send", "-q", "--template", "welcome",
                 "--to", "bench@example.com", "--data", "name=Bench", "--wait"],
                env=base_env, capture_output=True, text=True,
            )  # fmt: skip
            if sent.returncode != 0:
                raise SystemExit(f"sending the benchmark message failed: {sent.stderr}")
            message_id = sent.stdout.strip()
            env = {**base_env, "OUTKIT_PROFILE": "unsigned"}
            cmds = {
                TARGET: [outkit, "get", message_id],
                HTTPIE: [
                    http, "--ignore-stdin", "GET", f"{url}/messages/{message_id}",
                    f"Outkit-Access-Key:{unsigned['key']}",
                    f"Outkit-Access-Passphrase:{unsigned['passphrase']}",
                    f"Outkit-Access-Secret:{unsigned['secret']}",
                ],
                "outkit get ID --json": [outkit, "get", message_id, "--json"],
                "outkit get ID (signed key)": [outkit, "-p", "signed", "get", message_id],
            }  # fmt: skip
            for _ in range(args.warmup):
                for argv in cmds.values():
                    run_once(argv, env, message_id)
            walls: dict[str, list[float]] = {name: [] for name in cmds}
            rss: dict[str, list[float]] = {name: [] for name in cmds}
            names = list(cmds)
            for i in range(args.rounds):
                # rotate the order each round: no command always runs first or last
                for name in names[i % len(names) :] + names[: i % len(names)]:
                    wall, peak = run_once(cmds[name], env, message_id)
                    walls[name].append(wall)
                    rss[name].append(peak)
        finally:
            stop(server)

    ref = statistics.median(walls[HTTPIE])
    rows = []
    ok = True
    for name in cmds:
        median = statistics.median(walls[name])
        peak = max(rss[name])
        ratio = median / ref
        is_target = name == TARGET
        passed = None
        if name != HTTPIE:
            passed = ratio <= TIME_RATIO_TARGET and peak <= RSS_TARGET_MIB
            if is_target and not passed:
                ok = False
        rows.append(
            {
                "command": name,
                "median_ms": round(median * 1000, 1),
                "p90_ms": round(sorted(walls[name])[int(0.9 * (len(walls[name]) - 1))] * 1000, 1),
                "ratio_to_httpie": round(ratio, 2),
                "peak_rss_mib": round(peak, 1),
                "target": is_target,
                "pass": passed,
            }
        )

    header = f"{'command':<38} {'median':>8} {'p90':>8} {'ratio':>6} {'peak RSS':>9}  result"
    print(header)
    print("-" * len(header))
    for r in rows:
        if r["pass"] is None:
            result = "reference (HTTPie)"
        else:
            result = ("PASS" if r["pass"] else "FAIL") + ("" if r["target"] else " (info)")
        print(
            f"{r['command']:<38} {r['median_ms']:>6.1f}ms {r['p90_ms']:>6.1f}ms "
            f"{r['ratio_to_httpie']:>5.2f}x {r['peak_rss_mib']:>6.1f}MiB  {result}"
        )
    print(
        f"\ntargets: `{TARGET}` median <= {TIME_RATIO_TARGET}x HTTPie's, peak RSS <= "
        f"{RSS_TARGET_MIB} MiB; {args.rounds} interleaved rounds, {os.cpu_count()} CPUs"
    )
    write_report(
        args.out,
        "get",
        {
            "rounds": args.rounds,
            "targets": {"ratio_to_httpie": TIME_RATIO_TARGET, "peak_rss_mib": RSS_TARGET_MIB},
            "results": rows,
            "pass": ok,
        },
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
