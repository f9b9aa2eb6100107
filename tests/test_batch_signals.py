"""Ctrl-C in every phase of a batch, and a batch started with SIGINT ignored (newcomer
trial: a Ctrl-C during a rerun's lookups printed a bare "Aborted."; a batch started as
`cmd &` from a script honoured SIGINT in one phase and not in another)."""

from __future__ import annotations

import signal
import time
from collections import Counter

import pytest

from tests.batch_helpers import (
    batch_child,
    held,
    people,
    results,
    wait_for_results,
    write_csv,
)


def test_ctrl_c_during_the_reruns_lookups_stops_like_ctrl_c_while_sending(start_sandbox, tmp_path):
    box = start_sandbox(latency=150)
    src = write_csv(tmp_path / "rows.csv", people(64, "lk"))
    journal = tmp_path / "rows.csv.outkit-journal"
    first = batch_child(src, box)
    wait_for_results(journal, 1, first)
    first.kill()  # rows handed out are journalled pending, without their outcomes
    first.wait()
    left = 64 - journal.read_text().count('"type":"result"')
    assert left >= 8
    # one lookup at a time, 150 ms each: the rerun spends seconds looking rows up
    rerun = batch_child(src, box, "--concurrency", "1")
    assert rerun.stderr is not None
    note = rerun.stderr.readline().decode()
    assert f"looking up {left} rows an earlier run left unfinished" in note, note
    time.sleep(0.5)
    rerun.send_signal(signal.SIGINT)
    out, err = rerun.communicate(timeout=60)
    assert rerun.returncode == 130, err.decode()
    assert b"Aborted" not in err and b"Traceback" not in err
    assert b"interrupted" in err and b"run the same command again" in err
    # and the run after it sends every row exactly once
    last = batch_child(src, box)
    out, err = last.communicate(timeout=120)
    assert last.returncode == 0, err.decode()
    statuses = Counter(r["status"] for r in results(out.decode()))
    assert statuses["accepted"] + statuses["skipped"] == 64
    stored = held(box, "lk")
    assert len(stored) == 64 and set(stored.values()) == {1}


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_batch_started_with_a_signal_ignored_keeps_ignoring_it(start_sandbox, tmp_path, signum):
    """`outkit send --batch f.csv &` in a script (SIGINT ignored by the shell), nohup or a
    supervisor's choice (SIGTERM): every phase of the batch keeps ignoring it (it used to
    install its own handler while sending)."""
    box = start_sandbox(latency=20)
    tag = f"ign{int(signum)}"
    src = write_csv(tmp_path / "rows.csv", people(80, tag))
    journal = tmp_path / "rows.csv.outkit-journal"
    previous = signal.signal(signum, signal.SIG_IGN)
    try:
        proc = batch_child(src, box)  # inherits SIG_IGN
    finally:
        signal.signal(signum, previous)
    wait_for_results(journal, 10, proc)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    assert [r["status"] for r in results(out.decode())] == ["accepted"] * 80
    assert b"stopping" not in err
    assert set(held(box, tag).values()) == {1}
