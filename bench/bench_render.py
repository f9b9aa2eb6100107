"""Rendering: normal templates' cost, and hostile templates' time and memory (issue 9).

Normal: the demo `welcome` message (HTML with CSS inlined, text, subject) rendered again
and again, in interleaved rounds, by
- "pybars3 in-process (before)": the renderer before issue 9, from the git history (only
  when `pybars` is importable here),
- "dotpromptz in-process": `render.Renderer`, the engine now, in this process,
- "render pool": what the sandbox does now, a job sent to a render process with limits.
Hostile: each case of the issue through the render pool (the sandbox's path), with wall
time and the render process's peak RSS (VmHWM, sampled every 20 ms). With `pybars` importable,
`--before` also runs each hostile case through the renderer before issue 9 (pybars3 behind
its regex syntax check, read from the git history) in a child process (its own peak RSS
from `os.wait4`, a 60 s cap).

    .venv/bin/python bench/bench_render.py [--rounds 15] [--before] [--out FILE.json]

Targets: every hostile case ends within its limit plus 1 s; the render pool renders a
normal message in under 10 ms (median).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, write_report

sys.path.insert(0, str(ROOT))

from outkit_cli.sandbox.errors import RenderError
from outkit_cli.sandbox.render import Renderer, inline_css
from outkit_cli.sandbox.render_pool import RenderPool
from outkit_cli.sandbox.templates import Catalog, builtin_dir, find_template

POOL_TARGET_MS = 10.0
ITEMS = list(range(250))
NESTED = (
    "<table>{{#each items}}<tr>{{#each ../items}}{{#each ../../items}}"
    "<td class='cell'>{{this}} of {{../this}} of {{../../this}} for {{@root.name}}</td>"
    "{{/each}}{{/each}}</tr>{{/each}}</table>"
) * 4
HOSTILE: dict[str, tuple[str, dict[str, Any]]] = {
    # 40 KB: a quadratic regex check under a lock froze every request for 17 s
    "'{{' * 20000": ("{{" * 20000, {}),
    "'{{a ' * 10000": ("{{a " * 10000, {}),
    # 500 KB, the last tag broken: finding its line must stay linear
    "'{{a}}' * 100000 + '{{#if'": ("{{a}}" * 100000 + "{{#if", {}),
    # 1.3 KB of nested each over 250 items: 18 s and 420 MB under pybars3
    "nested each x3 over 250 items": (NESTED, {"items": ITEMS, "name": "n"}),
    "3 MB value printed 250 times": (
        "{{#each items}}{{{../big}}}{{/each}}",
        {"items": ITEMS, "big": "x" * 3_000_000},
    ),
    "11 MB output": (
        "{{#each items}}{{{../big}}}{{/each}}",
        {"items": ITEMS[:11], "big": "x" * 1_000_000},
    ),
    "recursive inline partial": ('{{#*inline "p"}}{{> p}}{{> p}}{{/inline}}{{> p}}', {}),
    "blocks nested 5000 deep": ("{{#if a}}" * 5000 + "{{/if}}" * 5000, {"a": 1}),
}


def welcome_job() -> tuple[dict[str, Any], dict[str, Any], str | None]:
    demo = Catalog(builtin_dir()).find_project("demo", None)
    assert demo is not None
    tpl = find_template(demo, "welcome", None)
    assert tpl is not None and tpl.html and tpl.text and tpl.subject
    data = {**demo.data, **tpl.data, "name": "Ada", "items": ["one", "two", "three"]}
    parts = [
        {"name": "html", "source": tpl.html, "html": True, "css": tpl.css, "what": "html"},
        {"name": "subject", "source": tpl.subject, "html": False, "what": "subject"},
        {"name": "text", "source": tpl.text, "html": False, "what": "text"},
    ]
    return {"data": data, "parts": parts}, data, tpl.css


def normal(rounds: int, per_round: int) -> dict[str, Any]:
    job, data, css = welcome_job()
    renderer = Renderer()
    pool = RenderPool()
    pool.warm_up()

    def in_process() -> None:
        for part in job["parts"]:
            out = renderer.render(part["source"], data, html=part["html"], what=part["what"])
            if part["html"]:
                inline_css(out, css)

    runners = {"dotpromptz in-process": in_process, "render pool": lambda: pool.render(job)}
    old = _old_renderer()
    if old is not None:

        def before() -> None:
            for part in job["parts"]:
                out = old.render(part["source"], data, html=part["html"], what=part["what"])
                if part["html"]:
                    inline_css(out, css)

        runners = {"pybars3 in-process (before)": before, **runners}
    for fn in runners.values():
        fn()  # warm: caches, imports
    samples: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(rounds):
        for name, fn in runners.items():
            start = time.perf_counter()
            for _ in range(per_round):
                fn()
            samples[name].append((time.perf_counter() - start) / per_round * 1000)
    pool.close()
    medians = {name: statistics.median(ms) for name, ms in samples.items()}
    return {"ms_per_message": medians}


def _hwm(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


def hostile_after() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, (source, data) in HOSTILE.items():
        pool = RenderPool()
        pool.warm_up()
        peak = [0]
        running = threading.Event()
        running.set()

        def sample(
            pool: RenderPool = pool, running: threading.Event = running, peak: list[int] = peak
        ) -> None:
            while running.is_set():
                for child in [*pool._idle, *pool._busy]:
                    peak[0] = max(peak[0], _hwm(child.proc.pid))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        job = {
            "data": data,
            "parts": [{"name": "html", "source": source, "html": True, "what": "t"}],
        }
        start = time.perf_counter()
        try:
            pool.render(job)
            outcome = "rendered"
        except RenderError as exc:
            outcome = str(exc)[:110]
        took = time.perf_counter() - start
        running.clear()
        sampler.join()
        pool.close()
        out[name] = {"seconds": round(took, 3), "peak_rss_mib": peak[0], "outcome": outcome}
    return out


BEFORE = """
import json, sys, time, types
old = types.ModuleType("old_render")
exec(compile(sys.argv[1], "old_render.py", "exec"), old.__dict__)
source, data = json.loads(sys.stdin.read())
start = time.perf_counter()
try:
    out = old.Renderer().render(source, data, html=True, what="t")
    outcome = f"rendered {len(out):,} characters"
except Exception as exc:
    outcome = f"{type(exc).__name__}: {exc}"[:110]
print(json.dumps({"seconds": round(time.perf_counter() - start, 3), "outcome": outcome}))
"""
# the renderer before issue 9 (pybars3 behind a regex syntax check), from the git history
BEFORE_COMMIT = "02bf048"


def _old_source() -> str | None:
    try:
        import pybars  # noqa: F401
    except ImportError:
        return None
    done = subprocess.run(["git", "show", f"{BEFORE_COMMIT}:outkit_cli/sandbox/render.py"],
                          cwd=ROOT, capture_output=True, text=True)  # fmt: skip
    return done.stdout if done.returncode == 0 else None


def _old_renderer() -> Any:
    """The Renderer before issue 9, when pybars3 and the git history are at hand."""
    import types

    source = _old_source()
    if source is None:
        return None
    module = types.ModuleType("old_render")
    exec(compile(source, "old_render.py", "exec"), module.__dict__)
    return module.Renderer()


def hostile_before() -> dict[str, Any]:
    old_render = _old_source()
    if old_render is None:
        raise SystemExit("--before needs pybars3 installed and the git history")
    out: dict[str, Any] = {}
    for name, (source, data) in HOSTILE.items():
        proc = subprocess.Popen([sys.executable, "-c", BEFORE, old_render], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)  # fmt: skip
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps([source, data]).encode())
        proc.stdin.close()
        start = time.perf_counter()
        timer = threading.Timer(60, proc.kill)
        timer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        timer.cancel()
        took = time.perf_counter() - start
        text = proc.stdout.read()
        proc.returncode = status  # reaped above
        row = json.loads(text) if text.strip() else {"seconds": round(took, 3),
                                                      "outcome": "killed after 60 s"}  # fmt: skip
        row["peak_rss_mib"] = usage.ru_maxrss // 1024
        out[name] = row
    return out


def _row(name: str, row: dict[str, Any]) -> None:
    print(f"  {name:34} {row['seconds']:7.2f} s {row['peak_rss_mib']:5d} MiB  {row['outcome']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--per-round", type=int, default=20)
    parser.add_argument(
        "--before", action="store_true", help="also run hostile cases under pybars3"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "render.json")
    args = parser.parse_args()

    report: dict[str, Any] = {"normal": normal(args.rounds, args.per_round)}
    print("normal message (demo welcome: HTML + CSS, subject, text), median ms per message:")
    for name, ms in report["normal"]["ms_per_message"].items():
        print(f"  {name:24} {ms:8.3f}")
    report["hostile"] = hostile_after()
    print("hostile templates through the render pool (the sandbox's path):")
    for name, row in report["hostile"].items():
        _row(name, row)
    if args.before:
        report["hostile_before"] = hostile_before()
        print("the same under pybars3 in one process (before issue 9):")
        for name, row in report["hostile_before"].items():
            _row(name, row)
    write_report(args.out, "render", report)
    missed = [n for n, r in report["hostile"].items() if r["seconds"] > 6.0]
    if report["normal"]["ms_per_message"]["render pool"] > POOL_TARGET_MS:
        missed.append("render pool speed")
    if missed:
        print(f"missed: {', '.join(missed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
