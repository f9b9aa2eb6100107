"""`make demo` (scripts/demo.py) as a newcomer runs it: piped into `head`, it stops its
sandbox and exits quietly instead of leaving a server running after its directory is gone."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _processes_using(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{entry.name}: {cmdline}")
    return found


def test_demo_piped_into_head_stops_its_sandbox() -> None:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "demo.py")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert proc.stdout is not None and proc.stderr is not None
    data_dir = None
    for _ in range(20):  # `head -5`: read a few lines, then go away
        line = proc.stdout.readline().decode()
        match = re.search(r"--data-dir (\S+)", line)
        if match:
            data_dir = match.group(1)
            break
    assert data_dir, "the demo did not print its sandbox command"
    proc.stdout.close()
    try:
        stderr = proc.stderr.read().decode()
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "Traceback" not in stderr, stderr
    assert code == 141, stderr
    assert _processes_using(data_dir) == []
    assert not Path(data_dir).exists()
