"""Bulk sending a person can trust (issue 14): edits, lost journals, two runs at once,
Ctrl-C twice, the dry run, files from the real world, output that tells the truth.

Every exactly-once claim is counted on the sandbox, by recipient."""

from __future__ import annotations

import fcntl
import json
import re
import signal
import time
from collections import Counter
from pathlib import Path

import platformdirs
import pytest

from tests.batch_helpers import DEMO, batch, batch_child, held, people, results, write_csv
from tests.helpers import run
from tests.sandbox_fixture import Sandbox

# --- 1. editing the input never resends --------------------------------------------------


def test_edited_file_sends_only_new_and_changed_rows(sandbox, tmp_path):
    src = write_csv(tmp_path / "edit.csv", people(6, "ed"))
    code, first, _ = batch(src, env=sandbox.env())
    assert code == 0 and len(first) == 6
    ids = {r["id_from_submitter"]: r["id"] for r in first}
    # fix a typo in the last row, add a row at the top, drop row 3, swap two rows
    rows = people(6, "ed")
    rows[5]["data.name"] = "P5 fixed"
    rows = [{"to": "ed-new@example.com", "data.name": "New"}, *rows]
    del rows[3]
    rows[1], rows[2] = rows[2], rows[1]
    write_csv(src, rows)
    code, second, err = batch(src, env=sandbox.env())
    assert code == 0, err
    by_to = {rows[r["row"] - 2]["to"]: r for r in second}
    for to in ("ed-0@example.com", "ed-1@example.com", "ed-3@example.com", "ed-4@example.com"):
        assert by_to[to]["status"] == "skipped"
        assert ids[by_to[to]["id_from_submitter"]] == by_to[to]["id"]  # skipped carry both
    assert by_to["ed-5@example.com"]["status"] == "accepted"  # changed: a new message
    assert by_to["ed-new@example.com"]["status"] == "accepted"
    changed_line = by_to["ed-5@example.com"]["row"]
    assert f"4 already sent, 2 new or changed (changed: line {changed_line})" in err
    counts = held(sandbox, "ed")
    assert counts["ed-5@example.com"] == 2  # the old and the fixed version
    assert counts["ed-new@example.com"] == 1
    assert {counts[f"ed-{i}@example.com"] for i in (0, 1, 2, 3, 4)} == {1}


def test_lost_journal_or_a_new_journal_path_never_resends(sandbox, tmp_path):
    src = write_csv(tmp_path / "lost.csv", people(5, "lj"))
    journal = tmp_path / "lost.csv.outkit-journal"
    assert batch(src, env=sandbox.env())[0] == 0
    journal.unlink()  # a new machine
    code, rerun, err = batch(src, env=sandbox.env())
    assert code == 0, err
    assert {r["status"] for r in rerun} == {"skipped"}
    assert all(r["id"] and r["id_from_submitter"] for r in rerun)
    # what the old error message advised: a new journal path
    code, again, err = batch(src, "--journal", str(tmp_path / "new.journal"), env=sandbox.env())
    assert code == 0, err
    assert {r["status"] for r in again} == {"skipped"}
    assert set(held(sandbox, "lj").values()) == {1}


def test_resend_sends_again_on_purpose_and_only_once(sandbox, tmp_path):
    src = write_csv(tmp_path / "re.csv", people(3, "rs"))
    assert batch(src, env=sandbox.env())[0] == 0
    code, resent, err = batch(src, "--resend", env=sandbox.env())
    assert code == 0, err
    assert {r["status"] for r in resent} == {"accepted"}
    code, after, _ = batch(src, env=sandbox.env())  # continues the resend: nothing new
    assert code == 0 and {r["status"] for r in after} == {"skipped"}
    assert set(held(sandbox, "rs").values()) == {2}
    helped = " ".join(run("send", "--help").stdout.split())
    assert "--resend --batch: send every row again, also those already sent" in helped


def test_identical_rows_are_distinct_messages_with_stable_ids(sandbox, tmp_path):
    src = write_csv(tmp_path / "twins.csv", [people(1, "tw")[0]] * 3)
    code, first, _ = batch(src, env=sandbox.env())
    assert code == 0
    ifs = [r["id_from_submitter"] for r in sorted(first, key=lambda r: r["row"])]
    assert ifs[1:] == [ifs[0] + "-2", ifs[0] + "-3"]  # the n-th identical row adds -n
    write_csv(src, [people(1, "tw")[0]] * 2)  # one of them removed
    code, second, _ = batch(src, env=sandbox.env())
    assert code == 0 and {r["status"] for r in second} == {"skipped"}
    assert held(sandbox, "tw") == Counter({"tw-0@example.com": 3})


def test_rows_sharing_their_own_id_are_refused(sandbox, tmp_path):
    src = tmp_path / "own.jsonl"
    src.write_text(
        json.dumps({"to": "own-1@example.com", "id_from_submitter": "order-7"})
        + "\n"
        + json.dumps({"to": "own-2@example.com", "id_from_submitter": "order-7"})
        + "\n"
    )
    code, rows, _ = batch(src, env=sandbox.env())
    assert code == 2
    by_row = {r["row"]: r for r in rows}
    assert by_row[1]["status"] == "accepted" and by_row[1]["id_from_submitter"] == "order-7"
    assert by_row[2]["status"] == "invalid" and "also line 1's" in by_row[2]["error"]
    res = run("send", "--batch", str(src), *DEMO, "--id-from-submitter", "x")
    assert res.exit_code == 2 and "every row would share it" in res.stderr


# --- 2. two runs at once -----------------------------------------------------------------


def test_a_second_run_on_a_locked_journal_exits_2_naming_the_holder(sandbox, tmp_path):
    src = write_csv(tmp_path / "lock.csv", people(3, "lk"))
    journal = tmp_path / "lock.csv.outkit-journal"
    journal.write_text(
        '{"type":"batch","version":2,"input":"lock.csv"}\n{"type":"run","pid":4242,"started":0}\n'
    )
    with journal.open("rb") as holder:
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX)
        started = time.monotonic()
        res = run("send", "--batch", str(src), *DEMO, env=sandbox.env())
        assert res.exit_code == 2
        assert time.monotonic() - started < 10  # at once, not after a wait
        assert res.stderr.splitlines() == [
            f"error: batch journal {journal} is in use by another run (process 4242): it is "
            "sending this batch; let it finish, or pass --wait-lock SECONDS to wait for it"
        ]
        res = run("send", "--batch", str(src), *DEMO, "--wait-lock", "0.3", env=sandbox.env())
        assert res.exit_code == 2 and "after waiting 0.3 s" in res.stderr
        waiting = batch_child(src, sandbox, "--wait-lock", "60")
        time.sleep(1)  # not synchronisation: whatever the child did by now, it cannot be done
        assert waiting.poll() is None
    # the holder closed the file: the waiting run goes on
    _, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 0, err.decode()
    assert held(sandbox, "lk") == Counter(f"lk-{i}@example.com" for i in range(3))


def test_two_runs_started_together_send_every_row_once(start_sandbox, tmp_path):
    box = start_sandbox(latency=100)  # a run takes seconds: the two overlap
    src = write_csv(tmp_path / "cron.csv", people(40, "cron"))
    first, second = batch_child(src, box), batch_child(src, box)
    outs = [p.communicate(timeout=120) for p in (first, second)]
    codes = [p.returncode for p in (first, second)]
    errs = [o[1].decode() for o in outs]
    # one run sends; the other exits 2 naming it, or (a machine so loaded that the second
    # started after the first had ended) finds every row already sent
    assert sorted(codes) in ([0, 2], [0, 0]), errs
    if 2 in codes:
        assert "is in use by another run (process " in errs[codes.index(2)]
    assert held(box, "cron") == Counter(f"cron-{i}@example.com" for i in range(40))


def _two_runs_once(box: Sandbox, tag: str, first: list[str], second: list[str]) -> None:
    """Two runs started together on one file (through `first` and `second`, the batch path
    and options of each): every row is sent once, and a run that finds the other exits 2
    naming it, whatever its journal."""
    runs = [batch_child(Path(argv[0]), box, *argv[1:]) for argv in (first, second)]
    outs = [p.communicate(timeout=120) for p in runs]
    codes = [p.returncode for p in runs]
    errs = [o[1].decode() for o in outs]
    assert sorted(codes) in ([0, 2], [0, 0]), errs
    if 2 in codes:
        loser = errs[codes.index(2)].splitlines()
        assert len(loser) == 1 and "is in use by another run (process " in loser[0], loser
    assert held(box, tag) == Counter(f"{tag}-{i}@example.com" for i in range(40))


def test_two_runs_on_one_file_through_a_symlink_send_every_row_once(start_sandbox, tmp_path):
    # the default journal is named after the path typed: two journals, one file
    box = start_sandbox(latency=100)
    src = write_csv(tmp_path / "m.csv", people(40, "sym"))
    (tmp_path / "mlink.csv").symlink_to("m.csv")
    _two_runs_once(box, "sym", [str(src)], [str(tmp_path / "mlink.csv")])


def test_two_runs_on_one_file_with_two_journals_send_every_row_once(start_sandbox, tmp_path):
    box = start_sandbox(latency=100)
    src = write_csv(tmp_path / "two.csv", people(40, "jj"))
    j1, j2 = tmp_path / "j1", tmp_path / "j2"
    _two_runs_once(box, "jj", [str(src), "--journal", str(j1)], [str(src), "--journal", str(j2)])


def test_a_second_run_on_a_locked_input_file_exits_2_naming_the_holder(sandbox, tmp_path):
    src = write_csv(tmp_path / "held.csv", people(3, "hd"))
    link = tmp_path / "held-link.csv"
    link.symlink_to(src)
    holder = batch_child(src, sandbox, "--journal", str(tmp_path / "j1"))
    holder.communicate(timeout=60)  # the lock file exists now; hold it as a run would
    locks = platformdirs.user_state_path("outkit") / "locks"
    (lock,) = [p for p in locks.iterdir() if p.name.startswith("input-")]
    assert lock.stat().st_mode & 0o777 == 0o600 and lock.parent.stat().st_mode & 0o777 == 0o700
    more = write_csv(tmp_path / "held.csv", people(5, "hd"))  # same inode, two new rows
    assert more == src
    with lock.open("r+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        fh.write(b"4343\n")
        fh.flush()
        res = run(
            "send",
            "--batch",
            str(link),
            *DEMO,
            "--journal",
            str(tmp_path / "j2"),
            env=sandbox.env(),
        )
        assert res.exit_code == 2
        assert res.stderr.splitlines() == [
            f"error: batch file {link} is in use by another run (process 4343): it is "
            "sending this batch; let it finish, or pass --wait-lock SECONDS to wait for it"
        ]
        waiting = batch_child(link, sandbox, "--journal", str(tmp_path / "j1"), "--wait-lock", "60")
        time.sleep(1)  # not synchronisation: whatever the child did by now, it cannot be done
        assert waiting.poll() is None
    _, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 0, err.decode()
    assert held(sandbox, "hd") == Counter(f"hd-{i}@example.com" for i in range(5))


def test_a_symlink_planted_as_the_input_lock_is_refused(sandbox, tmp_path):
    src = write_csv(tmp_path / "plant.csv", people(2, "pl"))
    st = src.stat()
    locks = platformdirs.user_state_path("outkit") / "locks"
    locks.mkdir(parents=True, mode=0o700)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    (locks / f"input-{st.st_dev:x}-{st.st_ino:x}.lock").symlink_to(victim)
    code, _, err = batch(src, env=sandbox.env())
    assert code == 2 and err.startswith(f"error: cannot lock batch file {src}: "), err
    assert "symbolic link" in err and len(err.splitlines()) == 1
    assert victim.read_text() == "keep me\n"
    assert held(sandbox, "pl") == Counter()


# --- 3. Ctrl-C, twice ----------------------------------------------------------------------


@pytest.mark.parametrize("attempt", range(3))
def test_a_second_ctrl_c_quits_at_once_and_the_rerun_is_exact(start_sandbox, tmp_path, attempt):
    box = start_sandbox(latency=50)
    tag = f"cc{attempt}"
    src = write_csv(tmp_path / "cc.csv", people(200, tag))
    journal = tmp_path / "cc.csv.outkit-journal"
    proc = batch_child(src, box, "--concurrency", "8")
    deadline = time.monotonic() + 60
    while not (journal.exists() and '"type":"result"' in journal.read_text()):
        assert proc.poll() is None and time.monotonic() < deadline, "no progress"
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.04)  # the scenario: a second Ctrl-C 40 ms after the first
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)  # at once: not after the rows in flight
    text = err.decode()
    # the second Ctrl-C may find the run over and Python finalising, its handlers back to
    # the default: killed by SIGINT then, which a shell reports as 130 as well
    assert proc.returncode in (130, -signal.SIGINT), text
    assert "Traceback" not in text and "Exception ignored" not in text
    assert "" not in text.splitlines()  # no blank line without a terminal
    rerun = batch_child(src, box)
    out, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err.decode()
    statuses = Counter(r["status"] for r in results(out.decode()))
    assert statuses["accepted"] + statuses["skipped"] == 200
    assert held(box, tag) == Counter(f"{tag}-{i}@example.com" for i in range(200))


def test_stdout_closed_by_its_reader_stops_the_batch_and_the_rerun_sends_the_rest(
    start_sandbox, tmp_path
):
    """`send --batch f.csv | head -1`: the reader leaves after one line. The batch stops as
    after Ctrl-C, says so in one line, exits 141 (128 + SIGPIPE), and the rerun sends the
    rest: every row stored once."""
    box = start_sandbox(latency=50)
    src = write_csv(tmp_path / "head.csv", people(60, "hd"))
    proc = batch_child(src, box, "--concurrency", "2")
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    assert json.loads(first)["status"] == "accepted"
    proc.stdout.close()  # `head -1` has its line and exits
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141, err
    assert "Traceback" not in err and "Exception ignored" not in err
    assert err.splitlines()[-1] == (
        "batch stopped: stdout was closed by its reader; the journal has every row sent: "
        "run the same command again to send the rest"
    )
    rerun = batch_child(src, box)
    out, err2 = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err2.decode()
    statuses = Counter(r["status"] for r in results(out.decode()))
    assert statuses["accepted"] + statuses["skipped"] == 60 and statuses["accepted"] > 0
    assert held(box, "hd") == Counter(f"hd-{i}@example.com" for i in range(60))


# --- 4. the dry run catches what can be known before sending ---------------------------------


def test_dry_run_checks_recipients_for_the_type(sandbox, tmp_path):
    src = tmp_path / "rem.csv"
    src.write_text("to,data.name\n+4790000001,Ola\nnot-an-email,Kari\nann@example.com,Ann\n")
    res = run("send", "--batch", str(src), *DEMO, "--dry-run", env=sandbox.env())
    assert res.exit_code == 2
    by_row = {r["row"]: r for r in results(res.stdout)}
    assert by_row[2]["status"] == "invalid" and "--type sms" in by_row[2]["error"]
    assert by_row[3] == {**by_row[3], "status": "invalid"}
    assert by_row[3]["error"] == "recipient 'not-an-email' is not an email address"
    assert by_row[4]["status"] == "valid"
    sms = tmp_path / "sms.csv"
    sms.write_text("to,text_body\n+47 900 00 001,Hi\n90000002,Hi\nann@example.com,Hi\n")
    res = run("send", "--batch", str(sms), "--project", "demo", "--type", "sms", "--dry-run")
    statuses = [r["status"] for r in sorted(results(res.stdout), key=lambda r: r["row"])]
    assert statuses == ["valid", "valid", "invalid"]
    assert "is not a phone number" in results(res.stdout)[-1]["error"]
    single = run("send", "--to", "not-an-email", *DEMO, "--dry-run", env=sandbox.env())
    assert single.exit_code == 2
    assert single.stderr.strip() == "error: recipient 'not-an-email' is not an email address"


# --- 5. files from the real world --------------------------------------------------------


@pytest.mark.parametrize("delimiter", [";", "\t"])
def test_semicolon_and_tab_separated_files(sandbox, tmp_path, delimiter):
    tag = "semi" if delimiter == ";" else "tab"
    src = write_csv(tmp_path / "eu.csv", people(3, tag), delimiter=delimiter)
    code, _, err = batch(src, env=sandbox.env())
    assert code == 0, err
    assert held(sandbox, tag) == Counter(f"{tag}-{i}@example.com" for i in range(3))
    names = {m["data"]["name"] for m in sandbox.messages() if m["to"].startswith(f"{tag}-")}
    assert names == {"P0", "P1", "P2"}


def test_a_header_read_with_the_wrong_delimiter_names_the_right_one(tmp_path):
    src = write_csv(tmp_path / "eu.csv", people(1, "x"), delimiter=";")
    res = run("send", "--batch", str(src), *DEMO, "--delimiter", ",", "--dry-run")
    assert res.exit_code == 2
    assert res.stderr.startswith(
        "error: line 1: unknown column 'to;data.name' (the header looks semicolon-separated: "
        "pass --delimiter ';')"
    )


def test_a_bad_byte_is_reported_on_its_line_before_anything_is_sent(sandbox, tmp_path):
    src = tmp_path / "latin.csv"
    lines = [b"to,data.name"] + [f"lat-{i}@example.com,P{i}".encode() for i in range(2000)]
    lines[1499] = b"lat-1498@example.com,Jos\xe9"  # line 1500
    src.write_bytes(b"\n".join(lines) + b"\n")
    res = run("send", "--batch", str(src), *DEMO, env=sandbox.env())
    assert res.exit_code == 2
    assert res.stdout == ""  # nothing sent, nothing printed valid
    assert res.stderr.strip() == (
        "error: line 1500: byte 0xe9 is not UTF-8: save the file as UTF-8, or pass "
        "--encoding cp1252 (Excel on Windows) or the encoding it was written in"
    )
    assert held(sandbox, "lat") == Counter()
    small = tmp_path / "l3.csv"
    small.write_bytes(b"to,data.name\nl3-0@example.com,A\nl3-1@example.com,Jos\xe9\n")
    res = run("send", "--batch", "-", *DEMO, "--dry-run", input=small.read_bytes())
    assert res.exit_code == 2 and "error: line 3: byte 0xe9" in res.stderr  # stdin too
    code, _, err = batch(small, "--encoding", "latin-1", env=sandbox.env())
    assert code == 0, err
    names = {m["data"]["name"] for m in sandbox.messages() if m["to"].startswith("l3-")}
    assert names == {"A", "José"}


def test_windows_1252_read_as_latin_1_is_refused_not_sent_garbled(sandbox, tmp_path):
    """Excel's CSV on Windows is Windows-1252: read as latin-1, its quotes, dashes and euro
    sign are C1 control characters that would reach the recipient invisible. The file is
    refused before anything is sent, naming cp1252; with it, the text arrives whole."""
    src = tmp_path / "excel.csv"
    text = "to;data.name\r\ncp-0@example.com;Se\u00e1n O\u2019Brien \u2013 5 \u20ac\r\n"
    src.write_bytes(text.encode("cp1252"))
    res = run("send", "--batch", str(src), *DEMO, "--encoding", "latin-1", env=sandbox.env())
    assert res.exit_code == 2
    assert res.stdout == ""
    assert res.stderr.strip() == (
        "error: line 2: U+0092 is a control character in iso8859-1 ('\u2019' in "
        "Windows-1252): files Excel saves on Windows are Windows-1252: pass --encoding cp1252"
    )
    assert held(sandbox, "cp-") == Counter()
    code, _, err = batch(src, "--encoding", "cp1252", env=sandbox.env())
    assert code == 0, err
    (msg,) = [m for m in sandbox.messages() if m["to"] == "cp-0@example.com"]
    assert msg["data"]["name"] == "Se\u00e1n O\u2019Brien \u2013 5 \u20ac"


def test_trailing_separators_are_empty_cells_not_a_bad_row(tmp_path):
    """Excel writes `a;b;;` under a two-column header (and sometimes in the header too)."""
    src = tmp_path / "trail.csv"
    src.write_text("to;data.name;;\na@example.com;A;;\nb@example.com;B\nc@example.com;C;x\n")
    res = run("send", "--batch", str(src), *DEMO, "--dry-run")
    by_row = {r["row"]: (r["status"], r.get("error")) for r in results(res.stdout)}
    assert by_row == {
        2: ("valid", None),
        3: ("valid", None),
        4: ("invalid", "has 3 cells, the header has 2"),  # a value past the header is data
    }


def test_a_capitalised_header_names_the_lower_case_column(tmp_path):
    src = tmp_path / "caps.csv"
    src.write_text("To;Data.Name\na@example.com;A\n")
    res = run("send", "--batch", str(src), *DEMO, "--dry-run")
    assert res.exit_code == 2
    assert res.stderr.startswith(
        "error: line 1: unknown column 'To' (column names are lower case: 'to'): "
    )


def test_an_empty_to_cell_says_so(tmp_path):
    src = tmp_path / "empty.csv"
    src.write_text("to,data.name\n,Ann\n")
    res = run("send", "--batch", str(src), *DEMO, "--dry-run")
    (row,) = results(res.stdout)
    assert row["error"] == "the row's to is empty (and no --to gives every row one)"


# --- 6. output that tells the truth ------------------------------------------------------


def test_one_row_is_one_row(sandbox, tmp_path):
    src = write_csv(tmp_path / "one.csv", people(1, "one"))
    res = run("send", "--batch", str(src), *DEMO, env=sandbox.env())
    assert res.exit_code == 0
    assert res.stderr.startswith("batch: 1 row: 1 accepted in ")


def test_the_progress_bar_counts_rows_and_its_last_frame_is_the_summary(start_sandbox, tmp_path):
    from outkit_cli.terminal import Terminal, use

    box = start_sandbox(latency=10)
    src = write_csv(tmp_path / "bar.csv", people(60, "bar"))
    with use(Terminal(stdout_tty=False, stderr_tty=True, width=160)):
        res = run("send", "--batch", str(src), *DEMO, env=box.env())
    assert res.exit_code == 0, res.stderr
    # the result lines went to stdout, not onto the terminal the bar is drawn on
    assert len(results(res.stdout)) == 60
    screen = res.stderr
    assert '"status"' not in screen
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen)
    frames = [f for f in re.split(r"[\r\n]", plain) if "sending" in f]
    assert frames, plain
    first_totals = {m for f in frames for m in re.findall(r"\d+/(\d+)", f)}
    assert first_totals == {"60"}  # the total is the row count from the start
    assert "60/60" in frames[-1] and "60 done, 0 failed" in frames[-1]
    assert "batch: 60 rows: 60 accepted" in plain


def test_hostile_encodings_and_nesting_are_usage_errors(tmp_path):
    src = tmp_path / "a.csv"
    src.write_text("to,data.name\na@example.com,A\n")
    for name, says in (("rot13", "not a text encoding"), ("utf-16", "not supported"),
                       ("no-such", "unknown encoding")):  # fmt: skip
        res = run("send", "--batch", str(src), *DEMO, "--dry-run", "--encoding", name)
        assert res.exit_code == 2 and says in res.stderr, res.stderr
    deep = tmp_path / "deep.jsonl"
    deep.write_text('{"to": "a@example.com", "data": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    res = run("send", "--batch", str(deep), *DEMO, "--dry-run")
    assert res.exit_code == 2
    assert results(res.stdout)[0]["error"] == "is nested too deeply"


def test_excel_files_bom_sep_line_and_old_mac_line_ends(tmp_path):
    """What Excel writes: a BOM, a `sep=;` line naming the delimiter, CRLF; and the old
    Mac CR-only line ends, which are named rather than misread."""
    src = tmp_path / "excel.csv"
    src.write_bytes(b"\xef\xbb\xbfsep=;\r\nto;data.name\r\na@example.com;A\r\n;B\r\n")
    res = run("send", "--batch", str(src), *DEMO, "--dry-run")
    by_row = {r["row"]: r["status"] for r in results(res.stdout)}
    assert by_row == {3: "valid", 4: "invalid"}  # true lines: the sep line counts
    mac = tmp_path / "mac.csv"
    mac.write_bytes(b"to,data.name\ra@example.com,A\r")
    res = run("send", "--batch", str(mac), *DEMO, "--dry-run")
    assert res.exit_code == 2
    assert "lines end in a lone carriage return" in res.stderr


def test_results_never_overwrite_the_input_or_the_journal(tmp_path):
    src = write_csv(tmp_path / "keep.csv", people(2, "keep"))
    before = src.read_bytes()
    for target in (src, tmp_path / "keep.csv.outkit-journal", tmp_path / "." / "keep.csv"):
        res = run("send", "--batch", str(src), *DEMO, "--results", str(target), "--dry-run")
        assert res.exit_code == 2 and "give the results their own file" in res.stderr
    assert src.read_bytes() == before


def test_a_large_csv_cell_is_read_and_one_too_large_for_a_request_is_that_rows_error(
    tmp_path: Path,
) -> None:
    # Python's csv module stops at 131,072 characters a cell: an order of 3,000 lines in
    # its data cell was "invalid: field larger than field limit (131072)" (newcomer trial)
    from outkit_cli.batch.rows import CSV_CELL_LIMIT

    items = json.dumps({"items": [{"sku": f"s{i}", "qty": 1} for i in range(6000)]})
    big = tmp_path / "big.csv"
    big.write_text(
        "to,data\n"
        f'a@example.com,"{items.replace(chr(34), chr(34) * 2)}"\n'
        f'b@example.com,"{"x" * (CSV_CELL_LIMIT + 1)}"\n'
    )
    res = run("send", "--batch", str(big), *DEMO, "--dry-run")
    rows = results(res.stdout)
    assert rows[0]["status"] != "invalid", rows[0]
    assert rows[1]["status"] == "invalid"
    assert (
        rows[1]["error"]
        == f"a cell holds over {CSV_CELL_LIMIT:,} characters, more than one request may carry"
    )
