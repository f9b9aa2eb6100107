"""Two runs at once on copies of one batch (attacker trial, finding 5): a copy in another
directory, a file an editor replaced, `sed -i`: other inodes, other journals, the same
rows. A row's id is its content's hash, so the runs meet at a lock keyed by the rows;
every row is stored once. Counted on the sandbox, by recipient."""

from __future__ import annotations

import fcntl
import json
import shutil
import time
from collections import Counter

import platformdirs

from tests.batch_helpers import DEMO, batch_child, held, people, write_csv
from tests.helpers import run


def test_two_runs_on_copies_in_two_directories_send_every_row_once(start_sandbox, tmp_path):
    box = start_sandbox(latency=100)  # a run takes seconds: the two overlap
    first = write_csv(tmp_path / "a" / "rows.csv", people(40, "cp"))
    second = tmp_path / "b" / "rows.csv"
    second.parent.mkdir()
    shutil.copyfile(first, second)
    runs = [batch_child(first, box), batch_child(second, box)]
    outs = [p.communicate(timeout=120) for p in runs]
    codes = [p.returncode for p in runs]
    errs = [o[1].decode() for o in outs]
    # one run sends; the other exits 2 naming it, or (a machine so loaded that the second
    # started after the first had ended) looks every row up and finds it sent
    assert sorted(codes) in ([0, 2], [0, 0]), errs
    if 2 in codes:
        (line,) = errs[codes.index(2)].splitlines()
        assert "are in use by another run (process " in line, line
    assert held(box, "cp") == Counter(f"cp-{i}@example.com" for i in range(40))


def test_a_copy_meets_the_run_holding_its_rows_and_can_wait_for_it(sandbox, tmp_path):
    """Deterministic: the rows' lock is held here, as a run holds it; a run on a copy (its
    own inode and journal) exits 2 at once naming the holder, or waits with --wait-lock."""
    src = write_csv(tmp_path / "a" / "rows.csv", people(3, "cw"))
    # `cp`, `sed -i` and editors write a new file: the same rows, another inode
    copy = tmp_path / "b" / "rows.csv"
    copy.parent.mkdir()
    copy.write_bytes(src.read_bytes())
    first = run("send", "--batch", str(src), *DEMO, env=sandbox.env())
    assert first.exit_code == 0, first.stderr
    locks = platformdirs.user_state_path("outkit") / "locks"
    (rows_lock,) = [p for p in locks.iterdir() if p.name.startswith("rows-")]
    assert rows_lock.stat().st_mode & 0o777 == 0o600
    with rows_lock.open("r+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        fh.write(b"4343\n")
        fh.flush()
        started = time.monotonic()
        res = run("send", "--batch", str(copy), *DEMO, env=sandbox.env())
        assert res.exit_code == 2
        assert time.monotonic() - started < 10
        assert res.stderr.splitlines() == [
            f"error: the rows of batch file {copy} are in use by another run (process 4343): "
            "it is sending the same rows (this file, or a copy of it); let it finish, or pass "
            "--wait-lock SECONDS to wait for it"
        ]
        waiting = batch_child(copy, sandbox, "--wait-lock", "60")
        time.sleep(1)  # not synchronisation: whatever the child did by now, it cannot be done
        assert waiting.poll() is None
    out, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 0, err.decode()
    # its journal is new: it looked the rows up and found them sent
    assert b'"status":"skipped"' in out.replace(b" ", b"") and b"accepted" not in out
    assert held(sandbox, "cw") == Counter(f"cw-{i}@example.com" for i in range(3))


def test_a_stdin_run_meets_the_run_holding_the_same_rows(sandbox, tmp_path):
    """Attacker trial 2: `cat rows.csv | outkit send --batch -` beside a run on the file
    sent 16 of 20 rows twice (stdin was read as it came, with no lock on its rows). Stdin
    is now copied to a private file first and read ahead, so it meets the rows' lock; the
    copy is gone afterwards."""
    src = write_csv(tmp_path / "a" / "rows.csv", people(3, "sd"))
    first = run("send", "--batch", str(src), *DEMO, env=sandbox.env())
    assert first.exit_code == 0, first.stderr
    state = platformdirs.user_state_path("outkit")
    (rows_lock,) = [p for p in (state / "locks").iterdir() if p.name.startswith("rows-")]
    with rows_lock.open("r+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        fh.write(b"4344\n")
        fh.flush()
        res = run("send", "--batch", "-", *DEMO, input=src.read_text(), env=sandbox.env())
        assert res.exit_code == 2, res.output
        assert "are in use by another run (process 4344)" in res.stderr
    assert list((state / "spool").iterdir()) == []
    # once the holder is gone, stdin's own first run looks the rows up: all sent already
    again = run("send", "--batch", "-", *DEMO, input=src.read_text(), env=sandbox.env())
    assert again.exit_code == 0, again.output
    assert [json.loads(line)["status"] for line in again.stdout.splitlines()] == ["skipped"] * 3
    assert held(sandbox, "sd") == Counter(f"sd-{i}@example.com" for i in range(3))
    assert list((state / "spool").iterdir()) == []
