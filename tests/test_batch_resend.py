"""`--resend` and interruptions (attacker trial, finding 2): a rerun of an interrupted
resend, WITH `--resend` as the user typed it, continues that resend instead of starting
another; no row is sent a third time. Counted on the sandbox, by recipient."""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path

from tests.batch_helpers import DEMO, batch_child, held, people, write_csv
from tests.helpers import run
from tests.sandbox_fixture import Sandbox

ROWS = 200


def _results_this_run(journal: Path) -> int:
    """Outcomes the journal's latest run recorded so far."""
    text = journal.read_text() if journal.exists() else ""
    return text[text.rfind('"type":"run"') :].count('"type":"result"')


def _runs(journal: Path) -> int:
    return journal.read_text().count('"type":"run"') if journal.exists() else 0


def _interrupt(src: Path, box: Sandbox, journal: Path, sig: int) -> tuple[int, str]:
    """Start `--resend` on `src`, wait until that run has recorded some outcomes, then send
    it `sig`."""
    before = _runs(journal)
    proc = batch_child(src, box, "--resend")
    deadline = time.monotonic() + 60
    while _runs(journal) == before or _results_this_run(journal) < 10:
        assert proc.poll() is None, "the batch finished before it could be interrupted"
        assert time.monotonic() < deadline, "the batch made no progress"
        time.sleep(0.02)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err.decode()


def _everyone(tag: str, times: int) -> Counter[str]:
    return Counter({f"{tag}-{i}@example.com": times for i in range(ROWS)})


def test_a_resend_interrupted_by_ctrl_c_is_continued_by_resend(start_sandbox, tmp_path):
    box = start_sandbox(latency=50)
    src = write_csv(tmp_path / "rem.csv", people(ROWS, "ci"))
    journal = tmp_path / "rem.csv.outkit-journal"
    first = run("send", "--batch", str(src), *DEMO, env=box.env())
    assert first.exit_code == 0, first.stderr
    assert held(box, "ci") == _everyone("ci", 1)

    code, err = _interrupt(src, box, journal, signal.SIGINT)
    assert code == 130, err
    partial = sum(held(box, "ci").values()) - ROWS
    assert 10 <= partial < ROWS
    # the message names the command that continues it: the same one, --resend included
    assert "interrupted: run the same command again" in err
    assert "continues this resend" in err and "-r1" in err

    again = run("send", "--batch", str(src), *DEMO, "--resend", env=box.env())
    assert again.exit_code == 0, again.stderr
    assert "continuing the resend (generation 1, ids ending -r1)" in again.stderr
    assert held(box, "ci") == _everyone("ci", 2)  # nobody got a third copy

    # that resend finished: --resend now starts the next one, and sends every row once more
    third = run("send", "--batch", str(src), *DEMO, "--resend", env=box.env())
    assert third.exit_code == 0, third.stderr
    assert "continuing" not in third.stderr
    assert held(box, "ci") == _everyone("ci", 3)


def test_resends_killed_again_and_again_never_send_a_row_three_times(start_sandbox, tmp_path):
    """SIGKILL leaves rows pending in the journal, twice; each --resend rerun continues the
    first resend (generation 1), looking the pending rows up before sending them."""
    box = start_sandbox(latency=50)
    src = write_csv(tmp_path / "k.csv", people(ROWS, "kr"))
    journal = tmp_path / "k.csv.outkit-journal"
    assert run("send", "--batch", str(src), *DEMO, env=box.env()).exit_code == 0
    for _ in range(2):
        code, _ = _interrupt(src, box, journal, signal.SIGKILL)
        assert code == -signal.SIGKILL
    assert '"generation":2' not in journal.read_text()
    final = batch_child(src, box, "--resend")
    _, err = final.communicate(timeout=120)
    assert final.returncode == 0, err.decode()
    assert "continuing the resend (generation 1" in err.decode()
    assert held(box, "kr") == _everyone("kr", 2)
