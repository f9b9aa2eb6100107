"""A short soak (`bench/soak.py`, 3 s of load, 3 clients) so CI exercises the same check as
`make soak`; the test counts what the sandbox holds itself rather than trusting the
script's verdict alone."""

from __future__ import annotations

import csv
import json
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_short_soak_every_row_exactly_once(tmp_path: Path) -> None:
    work, output = tmp_path / "work", tmp_path / "soak.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "soak.py"), "--seconds", "3", "--clients", "3",
         # a limit below what 3 clients reach even on a loaded machine (at 10/s a busy CI
         # worker sent 30 rows in 3 s and drew no 429), and a fault rate that ~30 requests
         # cannot miss (0.05 left 21% of runs without a 503): the check wants to see both
         "--rate-limit", "3", "--fail-rate", "0.2", "--work", str(work),
         "--output", str(output)],
        capture_output=True,
        timeout=180,
    )  # fmt: skip
    report = json.loads(output.read_text())
    assert proc.returncode == 0, (proc.stdout.decode(), report.get("checks"))
    assert report["passed"] is True

    # every row of every CSV the clients sent: one stored message, with the reported id
    recipients: list[str] = []
    reported: dict[str, str] = {}
    for src in sorted(work.glob("c*-b*.csv")):
        rows = list(csv.DictReader(src.open(newline="")))
        results = src.with_name(src.name.replace(".csv", ".results.jsonl"))
        by_row = {r["row"]: r for r in map(json.loads, results.read_text().splitlines())}
        for line_no, row in enumerate(rows, start=2):
            assert by_row[line_no]["status"] == "accepted"
            reported[row["to"]] = by_row[line_no]["id"]
            recipients.append(row["to"])
    assert len(recipients) == report["rows"] > 0
    conn = sqlite3.connect(work / "data" / "sandbox.sqlite3")
    held = conn.execute(
        "SELECT json_extract(doc, '$.to'), id FROM messages "
        "WHERE json_extract(doc, '$.to') LIKE 'soak-c%'"
    ).fetchall()
    conn.close()
    assert Counter(to for to, _ in held) == Counter(recipients)
    assert set(Counter(recipients).values()) == {1}
    assert dict(held) == reported

    # the sandbox pushed back, and the figures were measured
    assert report["retries"]["429"] > 0
    assert report["retries"]["503"] > 0
    assert report["requests_per_second"] > 0
    assert report["sandbox_rss_mib"]["start"] > 0 and report["sandbox_rss_mib"]["end"] > 0
    assert report["cli_rss_mib"]["peak_max"] > 0
    assert report["probe"]["before_equals_after"] is True
