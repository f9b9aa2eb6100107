"""Two runs at once on copies of one batch (attacker trial, finding 5): a copy in another
directory, a file an editor replaced, `sed -i`: other inodes, other journals, the same
rows. A row's id is its content's hash, so the runs meet at a lock keyed by the rows;
every row is stored once. Counted on the sandbox, by recipient."""

from __future__ import annotations

import csv
import fcntl
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import platformdirs

from tests.helpers import run
from tests.sandbox_fixture import Sandbox

DEMO = ("--project", "demo", "--template", "welcome")


def _csv(path: Path, tag: str, n: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["to", "data.name"])
        writer.writerows([f"{tag}-{i}@example.com", f"P{i}"] for i in range(n))
    return path


def _held(box: Sandbox, tag: str) -> Counter[str]:
    return Counter(m["to"] for m in box.messages() if m["to"].startswith(f"{tag}-"))


def _child(src: Path, box: Sandbox, *extra: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTKIT_")}
    env.update(box.env())
    env["OUTKIT_CONFIG"] = str(src.parent / "config.toml")
    return subprocess.Popen(
        [sys.executable, "-m", "outkit_cli", "send", "--batch", str(src), *DEMO, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )


def test_two_runs_on_copies_in_two_directories_send_every_row_once(start_sandbox, tmp_path):
    box = start_sandbox(latency=100)  # a run takes seconds: the two overlap
    first = _csv(tmp_path / "a" / "rows.csv", "cp", 40)
    second = tmp_path / "b" / "rows.csv"
    second.parent.mkdir()
    shutil.copyfile(first, second)
    runs = [_child(first, box), _child(second, box)]
    outs = [p.communicate(timeout=120) for p in runs]
    codes = [p.returncode for p in runs]
    errs = [o[1].decode() for o in outs]
    # one run sends; the other exits 2 naming it, or (a machine so loaded that the second
    # started after the first had ended) looks every row up and finds it sent
    assert sorted(codes) in ([0, 2], [0, 0]), errs
    if 2 in codes:
        (line,) = errs[codes.index(2)].splitlines()
        assert "are in use by another run (process " in line, line
    assert _held(box, "cp") == Counter(f"cp-{i}@example.com" for i in range(40))


def test_a_copy_meets_the_run_holding_its_rows_and_can_wait_for_it(sandbox, tmp_path):
    """Deterministic: the rows' lock is held here, as a run holds it; a run on a copy (its
    own inode and journal) exits 2 at once naming the holder, or waits with --wait-lock."""
    src = _csv(tmp_path / "a" / "rows.csv", "cw", 3)
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
        waiting = _child(copy, sandbox, "--wait-lock", "60")
        time.sleep(1)  # not synchronisation: whatever the child did by now, it cannot be done
        assert waiting.poll() is None
    out, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 0, err.decode()
    # its journal is new: it looked the rows up and found them sent
    assert b'"status":"skipped"' in out.replace(b" ", b"") and b"accepted" not in out
    assert _held(sandbox, "cw") == Counter(f"cw-{i}@example.com" for i in range(3))
