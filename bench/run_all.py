"""Run every `bench/bench_*.py` in turn (`make bench`), one after the other so that no
benchmark competes with another for the CPU. Each script prints its own table and writes its
JSON to `bench/results/`; this exits 1 when any of them failed or missed its target.

    .venv/bin/python bench/run_all.py [NAME_SUBSTRING ...]
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    scripts = sorted(HERE.glob("bench_*.py"))
    if argv:
        scripts = [s for s in scripts if any(word in s.stem for word in argv)]
    if not scripts:
        print("no benchmark matched", file=sys.stderr)
        return 2
    failed: list[str] = []
    for script in scripts:
        print(f"== {script.name}", flush=True)
        start = time.perf_counter()
        code = subprocess.run([sys.executable, str(script)], cwd=HERE.parent).returncode
        took = time.perf_counter() - start
        status = "ok" if code == 0 else f"FAILED (exit {code})"
        print(f"== {script.name}: {status} in {took:.1f}s\n", flush=True)
        if code != 0:
            failed.append(script.name)
    if failed:
        print(f"failed or missed a target: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"all {len(scripts)} benchmarks met their targets")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
