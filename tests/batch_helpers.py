"""What the batch tests share: input files, a run in this process or as a child process
(for signals and two runs at once), and what the sandbox stored."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from tests.helpers import run
from tests.sandbox_fixture import Sandbox

DEMO = ("--project", "demo", "--template", "welcome")


def write_csv(path: Path, rows: list[dict[str, str]], delimiter: str = ",") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    return path


def people(n: int, tag: str, start: int = 0) -> list[dict[str, str]]:
    return [{"to": f"{tag}-{i}@example.com", "data.name": f"P{i}"} for i in range(start, n)]


def results(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def held(box: Sandbox, tag: str) -> Counter[str]:
    """How many messages the sandbox stored for each recipient tagged ``tag``."""
    return Counter(m["to"] for m in box.messages() if m["to"].startswith(f"{tag}-"))


def batch(src: Path | str, *extra: str, env: dict[str, str]) -> tuple[int, list[dict], str]:
    res = run("send", "--batch", str(src), *DEMO, *extra, env=env)
    return res.exit_code, results(res.stdout), res.stderr


def batch_child(src: Path, box: Sandbox, *extra: str) -> subprocess.Popen[bytes]:
    """`outkit send --batch SRC` as a child process against ``box``, with a config of its
    own next to SRC and no OUTKIT_ variable from the test's environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTKIT_")}
    env.update(box.env())
    env["OUTKIT_CONFIG"] = str(src.parent / "config.toml")
    return subprocess.Popen(
        [sys.executable, "-m", "outkit_cli", "send", "--batch", str(src), *DEMO, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )


def wait_for_results(journal: Path, at_least: int, proc: subprocess.Popen[bytes]) -> None:
    """Wait (60 s at most) until the child batch ``proc`` has journalled ``at_least``
    results, so that a signal sent next meets it mid-run; fails if it finished first."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if journal.exists() and journal.read_text().count('"type":"result"') >= at_least:
            return
        assert proc.poll() is None, "the batch finished before it could be interrupted"
        time.sleep(0.02)
    raise AssertionError("the batch made no progress")
