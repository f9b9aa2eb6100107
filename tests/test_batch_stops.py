"""What ends a batch early, and what such a run leaves behind (trials on main):

- a run refused because another holds the lock emptied the --results file that other run
  was writing (its results ended with 192 of 300 lines);
- SIGTERM (timeout(1), systemd, cron's killers) ended the batch with a bare `Terminated`:
  no summary, result lines lost; it now stops it like a first Ctrl-C, exit 143;
- an API that cannot be reached, or that answers every POST 429, made each row use up its
  retries in turn (a dead API: ~43 s a row); the first such row now stops the batch.
"""

from __future__ import annotations

import fcntl
import json
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.batch_helpers import (
    batch_child,
    held,
    people,
    results,
    wait_for_results,
    write_csv,
)
from tests.helpers import run
from tests.netservers import closed_port
from tests.storing_api import storing_api
from tests.test_client import env_for

# --- 1. a run that fails before starting leaves --results alone ---------------------------


def test_a_run_refused_by_the_lock_leaves_the_other_runs_results_alone(sandbox, tmp_path):
    src = write_csv(tmp_path / "o2.csv", people(3, "rl"))
    journal = tmp_path / "o2.csv.outkit-journal"
    journal.write_text(
        '{"type":"batch","version":2,"input":"o2.csv"}\n{"type":"run","pid":4242,"started":0}\n'
    )
    out = tmp_path / "results.jsonl"
    written = '{"row": 2, "status": "accepted"}\n' * 192  # the first run's, so far
    out.write_text(written)
    with journal.open("rb") as holder:
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX)
        res = run("send", "--batch", str(src), "--project", "demo", "--template", "welcome",
                  "--results", str(out), env=sandbox.env())  # fmt: skip
    assert res.exit_code == 2, res.stderr
    assert "is in use by another run (process 4242)" in res.stderr
    assert out.read_text() == written


def test_a_run_with_no_input_file_leaves_the_results_file_alone(sandbox, tmp_path):
    out = tmp_path / "results.jsonl"
    out.write_text("kept\n")
    res = run("send", "--batch", str(tmp_path / "missing.csv"), "--project", "demo",
              "--template", "welcome", "--results", str(out), env=sandbox.env())  # fmt: skip
    assert res.exit_code == 2, res.stderr
    assert out.read_text() == "kept\n"


# --- 2. SIGTERM stops the batch like a first Ctrl-C -------------------------------------


@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_sigterm_stops_the_batch_with_its_summary_and_every_result(
    start_sandbox, tmp_path, signum, status
):
    box = start_sandbox(latency=100)
    src = write_csv(tmp_path / "rows.csv", people(200, "st"))
    journal = tmp_path / "rows.csv.outkit-journal"
    out_file = tmp_path / "results.jsonl"
    proc = batch_child(src, box, "--concurrency", "2", "--results", str(out_file))
    wait_for_results(journal, 4, proc)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == status, err.decode()
    text = err.decode()
    assert "Traceback" not in text
    assert "interrupted: run the same command again to send the rest" in text
    # every row the journal has an outcome for is in the results file too
    done = journal.read_text().count('"type":"result"')
    lines = results(out_file.read_text())
    assert len(lines) == done and 4 <= done < 200
    assert Counter(r["status"] for r in lines) == {"accepted": done}
    assert len(held(box, "st")) == done
    # the rerun sends the rest, each row once
    rerun = batch_child(src, box)
    out, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err.decode()
    statuses = Counter(r["status"] for r in results(out.decode()))
    assert statuses == {"skipped": done, "accepted": 200 - done}
    stored = held(box, "st")
    assert len(stored) == 200 and set(stored.values()) == {1}


# --- 3. an API that cannot be reached, or only answers 429, stops the batch -------------


def _rows(tmp_path: Path, n: int) -> Path:
    src = tmp_path / "rows.csv"
    src.write_text("to\n" + "".join(f"p{i}@example.com\n" for i in range(n)))
    return src


def _batch(url: str, src: Path, *extra: str):  # type: ignore[no-untyped-def]
    return run("send", "--batch", str(src), "--project", "p", "--text-body", "hello",
               "--concurrency", "2", *extra, env=env_for(url))  # fmt: skip


def test_an_api_that_cannot_be_reached_stops_the_batch(tmp_path):
    src = _rows(tmp_path, 40)
    port = closed_port()
    started = time.monotonic()
    res = _batch(f"http://127.0.0.1:{port}/v1", src, "--retries", "3")
    assert time.monotonic() - started < 90
    assert res.exit_code == 8, res.stderr
    # the first request (a lookup of the first rows: they may have been sent by a run whose
    # journal is gone) used up its 4 attempts, and the batch stopped: no other request
    assert "; 4 requests, " in res.stderr, res.stderr
    assert res.stdout == ""
    last = res.stderr.splitlines()[-1]
    assert last == (
        f"error: cannot connect to 127.0.0.1:{port}: Connection refused; credentials from the "
        f"environment at http://127.0.0.1:{port}/v1 (gave up after 4 attempts); the batch "
        "was stopped: run it again once the API answers"
    )
    # the rerun, with the rows left pending, looks one up and stops in the same way (its
    # lookups ran side by side, each after its own retries: 40 of them)
    started = time.monotonic()
    res = _batch(f"http://127.0.0.1:{port}/v1", src, "--retries", "3")
    assert time.monotonic() - started < 90
    assert res.exit_code == 8, res.stderr
    assert "looking up 40 rows" in res.stderr and "; 4 requests, " in res.stderr, res.stderr
    assert res.stderr.splitlines()[-1].endswith("run it again once the API answers")
    assert "Traceback" not in res.stderr
    # once an API answers, the rerun sends every row, once
    with storing_api() as (url, store):
        again = _batch(url, src)
    assert again.exit_code == 0, again.stderr
    assert store.posts == 40
    assert Counter(m["to"] for m in store.messages) == {f"p{i}@example.com": 1 for i in range(40)}


def test_an_api_answering_every_post_429_stops_the_batch(tmp_path):
    src = _rows(tmp_path, 40)
    slow_down = {"error": {"message": "slow down", "code": "rate_limited"}}
    started = time.monotonic()
    with storing_api(refuse=lambda n: (429, slow_down, {"Retry-After": "1"})) as (url, store):
        res = _batch(url, src, "--retries", "2")
    assert time.monotonic() - started < 90
    assert res.exit_code == 6, res.stderr
    # each row in flight (two workers) made its 3 attempts; no other row was tried
    assert store.posts <= 2 * 3, store.posts
    assert store.messages == []
    lines = results(res.stdout)
    assert 1 <= len(lines) <= 2 and {r["status"] for r in lines} == {"failed"}
    last = res.stderr.splitlines()[-1]
    assert last.startswith("error: rate limited: slow down (HTTP 429"), last
    assert last.endswith("; the batch was stopped: run it again later, or with a lower --rate")
    journal = src.with_name(src.name + ".outkit-journal")
    assert json.loads(journal.read_text().splitlines()[0])["type"] == "batch"
