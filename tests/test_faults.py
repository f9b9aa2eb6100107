"""Faults the CLI and the sandbox must survive: kill -9 of either side mid-work, a full
disk, a read-only config dir, a server whose clock is off."""

from __future__ import annotations

import csv
import json
import os
import random
import resource
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from outkit_cli.config import dump_config, load_config, save_profile
from tests.helpers import drop_file_permission_override, run
from tests.sandbox_fixture import Sandbox, launch

BASE = {"key": "kb", "passphrase": "pb", "secret": "sb", "signed": True}


def temp_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


# --- the CLI killed (SIGKILL) while it writes the config ------------------------------------

# Loops forever over three writes (add/replace profile `cur`, make it the default, make `base`
# the default), numbering its versions on from what the file holds, and says when each one
# is done; killed at random moments after some of them.
WRITER = r"""
import sys
from outkit_cli.cli import main
from outkit_cli.config import config_path, load_config

def call(*args):
    try:
        main(list(args))
    except SystemExit as exc:
        if exc.code:
            sys.exit(f"outkit {' '.join(args)} exited {exc.code}")
    print("done", file=sys.stderr, flush=True)  # stdout has the commands' own output

cur = load_config(config_path()).get("profiles", {}).get("cur")
n = int(cur["key"][1:]) + 1 if cur else 0
print("ready", file=sys.stderr, flush=True)
while True:
    call("keys", "add", "cur", "--key", f"k{n}", "--passphrase", "pc", "--secret", f"s{n}",
         "--force")
    call("keys", "default", "cur")
    call("keys", "default", "base")
    n += 1
"""


def _version(config_file: Path) -> tuple[int, int]:
    """(n, step) of the file: which write of the writer's sequence produced it.

    Asserts the file is whole: it parses, `base` is intact, `cur` is one consistent
    version, and the bytes are exactly what a writer produces for that content."""
    raw = config_file.read_bytes()
    data = load_config(config_file)
    assert raw == dump_config(data), raw
    profiles = data["profiles"]
    assert profiles["base"] == BASE
    assert set(profiles) <= {"base", "cur"}
    if "cur" not in profiles:
        assert data["default_profile"] == "base"
        return (-1, 2)
    cur = profiles["cur"]
    n = int(cur["key"][1:])
    assert cur == {"key": f"k{n}", "passphrase": "pc", "secret": f"s{n}", "signed": True}
    # add (default stays base) -> default cur -> default base
    return (n, 1 if data["default_profile"] == "cur" else 2)


def test_config_killed_mid_write_is_old_or_new_and_temp_files_do_not_pile_up(
    config_file: Path,
) -> None:
    save_profile(config_file, "base", BASE)
    rng = random.Random(6)
    first = last = _version(config_file)
    kills, left_behind = 0, 0
    # 25 kills, and more (up to 100) until one has landed inside a write: on a loaded
    # machine the random moment falls between writes more often
    while kills < 25 or (left_behind == 0 and kills < 100):
        kills += 1
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=child_env(),
        )
        assert proc.stderr is not None
        assert proc.stderr.readline() == b"ready\n"
        for _ in range(rng.randint(0, 3)):  # let some writes complete ...
            assert proc.stderr.readline() == b"done\n"
        time.sleep(rng.uniform(0.0, 0.02))  # ... then kill during or between the next
        proc.kill()
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == -signal.SIGKILL, err.decode()
        version = _version(config_file)
        assert version >= last  # never an older version than before
        last = version
        stale = temp_files(config_file.parent)
        # a writer cleans up what the one before it left: never more than the last kill's
        assert len(stale) <= 1, stale
        left_behind += len(stale)
    # the kills really landed inside writes (between the temp file and the rename) ...
    assert left_behind >= 1
    assert last > first  # ... and writes completed in between
    # ... and the next ordinary write leaves nothing behind
    res = run("keys", "default", "base")
    assert res.exit_code == 0, res.stderr
    assert temp_files(config_file.parent) == []
    assert sorted(p.name for p in config_file.parent.iterdir()) == [
        config_file.name,
        config_file.name + ".lock",
    ]


def test_stale_temp_files_of_other_configs_are_left_alone(config_file: Path) -> None:
    save_profile(config_file, "base", BASE)
    mine = config_file.parent / f".{config_file.name}.abcd_123.tmp"
    other = config_file.parent / f".{config_file.name}.bak.abcd_123.tmp"  # config.toml.bak's
    unrelated = config_file.parent / "notes.tmp"
    for path in (mine, other, unrelated):
        path.write_text("x")
    assert run("keys", "default", "base").exit_code == 0
    assert not mine.exists()
    assert other.exists() and unrelated.exists()


# --- a full disk and a read-only config dir -------------------------------------------------


def _file_size_limit(limit: int):  # type: ignore[no-untyped-def]
    def preexec() -> None:
        # writes past `limit` bytes fail with EFBIG instead of killing the process
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return preexec


@pytest.mark.parametrize(
    "args",
    [
        ("keys", "add", "b", "--key", "k", "--passphrase", "p", "--secret", "s", "--force"),
        ("keys", "default", "a"),
        ("keys", "remove", "b", "--yes"),
    ],
)
def test_disk_full_config_write(config_file: Path, args: tuple[str, ...]) -> None:
    save_profile(config_file, "a", BASE)
    save_profile(config_file, "b", BASE, make_default=True)
    before = config_file.read_bytes()
    proc = subprocess.run(
        [sys.executable, "-m", "outkit_cli", *args],
        capture_output=True,
        env=child_env(),
        preexec_fn=_file_size_limit(1),
        timeout=30,
    )
    assert proc.returncode == 2
    assert proc.stdout == b""
    assert proc.stderr.decode().splitlines() == [
        f"error: cannot write config file {config_file}: File too large; it was left unchanged"
    ]
    assert config_file.read_bytes() == before
    assert temp_files(config_file.parent) == []


def test_read_only_config_dir_with_a_stale_temp_file(config_file: Path) -> None:
    """The lock file exists (it can be locked), the dir is read-only: the write itself
    fails, the stale temp file that cannot be removed does not turn into a second error."""
    save_profile(config_file, "a", BASE)
    stale = config_file.parent / f".{config_file.name}.zzzz9999.tmp"
    stale.write_text("partial")
    before = config_file.read_bytes()
    config_file.parent.chmod(0o500)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "outkit_cli", "keys", "add", "b", "--key", "k",
             "--passphrase", "p", "--secret", "s"],
            capture_output=True,
            env=child_env(),
            preexec_fn=drop_file_permission_override,
            timeout=30,
        )  # fmt: skip
    finally:
        config_file.parent.chmod(0o700)
    assert proc.returncode == 2
    assert proc.stderr.decode().splitlines() == [
        f"error: cannot write config file {config_file}: Permission denied; it was left unchanged"
    ]
    assert config_file.read_bytes() == before
    assert stale.exists()


def test_config_dir_under_a_regular_file(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    path = blocker / "outkit" / "config.toml"
    res = run("--config", str(path), "keys", "add", "a", "--key", "k", "--passphrase", "p",
              "--secret", "s")  # fmt: skip
    assert res.exit_code == 2
    # the read before the write already fails: nothing is created, nothing written
    assert res.stderr == f"error: cannot read config file {path}: Not a directory\n"
    assert blocker.read_text() == "x"


# --- the sandbox killed (SIGKILL) during a batch and restarted on the same port ---------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_people(path: Path, n: int, tag: str) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["to", "data.name"])
        writer.writerows([f"{tag}-{i}@example.com", f"Person {i}"] for i in range(n))
    return path


def batch_process(src: Path, box: Sandbox, *extra: str) -> subprocess.Popen[bytes]:
    env = child_env()
    env.update(box.env())
    return subprocess.Popen(
        [sys.executable, "-m", "outkit_cli", "send", "--batch", str(src), "--project", "demo",
         "--template", "welcome", "--concurrency", "4", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )  # fmt: skip


def accepted_in_journal(journal: Path) -> dict[int, str]:
    """Row -> message id of every result the batch recorded as accepted (a torn last line
    from a kill is not a record)."""
    out: dict[int, str] = {}
    if not journal.exists():
        return out
    for raw in journal.read_bytes().splitlines(keepends=True):
        if raw.endswith(b"\n"):
            rec = json.loads(raw)
            if rec.get("type") == "result" and rec["status"] == "accepted":
                out[rec["row"]] = rec["id"]
    return out


@pytest.mark.parametrize("mode", ["carries-on", "gives-up"])
def test_sandbox_killed_during_a_batch_and_restarted_loses_nothing(
    tmp_path: Path, mode: str
) -> None:
    """carries-on: the sandbox is back within the batch's retries and the batch finishes;
    gives-up: no retries, the sandbox stays down until the batch has failed, then the
    batch is run again. Either way: no accepted message lost, every row exactly once."""
    port = free_port()
    data = tmp_path / "sandbox"
    args = ("--port", str(port))  # the last --port wins over launch()'s --port 0
    box = launch(data, latency=15, extra_args=args)
    restarted: Sandbox | None = None
    try:
        n, tag = 150, "crash"
        src = write_people(tmp_path / "rows.csv", n, tag)
        journal = tmp_path / "rows.csv.outkit-journal"
        proc = batch_process(src, box, *(("--retries", "0") if mode == "gives-up" else ()))
        deadline = time.monotonic() + 30
        while len(accepted_in_journal(journal)) < 20:
            assert proc.poll() is None, "the batch ended before the sandbox could be killed"
            assert time.monotonic() < deadline, "the batch made no progress"
            time.sleep(0.01)
        box.kill()  # SIGKILL with requests in flight
        assert box.process.returncode == -signal.SIGKILL
        if mode == "gives-up":
            out, err = proc.communicate(timeout=120)
        time.sleep(0.3)
        restarted = launch(data, latency=15, extra_args=args)
        assert restarted.url == box.url  # same port, same data dir, same keys
        if mode == "carries-on":
            out, err = proc.communicate(timeout=120)
        stderr = err.decode()
        assert "Traceback" not in stderr
        if mode == "carries-on":
            assert proc.returncode == 0, stderr
        else:  # a documented code: network error (8) for the rows it could not send
            assert proc.returncode == 8, stderr
            assert len(stderr.strip().splitlines()) <= 3, stderr
        reported = {
            r["row"]: r["id"]
            for r in map(json.loads, out.decode().splitlines())
            if r["status"] == "accepted"
        }
        reported.update(accepted_in_journal(journal))
        held = {m["id"]: m for m in restarted.messages() if m["to"].startswith(f"{tag}-")}
        # no accepted message lost: every id the batch reported exists after the crash
        assert set(reported.values()) <= set(held)
        # and no row was sent twice, even the ones in flight when the server died
        assert set(Counter(m["to"] for m in held.values()).values()) == {1}

        rerun = batch_process(src, restarted)
        out, err = rerun.communicate(timeout=120)
        assert rerun.returncode == 0, err.decode()
        statuses = Counter(r["status"] for r in map(json.loads, out.decode().splitlines()))
        assert statuses["accepted"] + statuses["skipped"] == n
        final = [m for m in restarted.messages() if m["to"].startswith(f"{tag}-")]
        expected = Counter(f"{tag}-{i}@example.com" for i in range(n))
        assert Counter(m["to"] for m in final) == expected
        # what was accepted before the kill is still the same message afterwards
        assert set(reported.values()) <= {m["id"] for m in final}
        # messages accepted just before the kill are delivered after the restart
        for message_id in list(reported.values())[:5]:
            assert restarted.wait_done(message_id)["status"] == "delivered"
    finally:
        box.kill()
        if restarted is not None:
            restarted.stop()


def test_a_row_journalled_unknown_is_looked_up_on_the_rerun_not_resent(sandbox, tmp_path):
    """The run that lost a row's answer could not look it up either (server down), and
    journalled it `unknown`. The message had reached the server: the rerun must find it,
    not send it a second time."""
    from tests.helpers import batch_row_ids, journal_text

    src = write_people(tmp_path / "lost.csv", 2, "lost")
    args = ("send", "--batch", str(src), "--project", "demo", "--template", "welcome")
    ids = batch_row_ids(*args, env=sandbox.env())
    ifs2 = ids[2]
    pre = run("send", "--project", "demo", "--template", "welcome", "--to",
              "lost-0@example.com", "--id-from-submitter", ifs2, "-q",
              env=sandbox.env())  # fmt: skip
    assert pre.exit_code == 0, pre.stderr
    records = [
        {"type": "pending", "rows": [[2, ifs2, ifs2], [3, ids[3], ids[3]]]},
        {"type": "result", "key": ifs2, "row": 2, "status": "unknown", "id": None,
         "id_from_submitter": ifs2,
         "error": "the answer was lost and the message could not be looked up"},
        {"type": "result", "key": ids[3], "row": 3, "status": "failed", "id": None,
         "id_from_submitter": ids[3], "error": "cannot connect"},
    ]  # fmt: skip
    (tmp_path / "lost.csv.outkit-journal").write_text(journal_text(*records))
    res = run("send", "--batch", str(src), "--project", "demo", "--template", "welcome",
              env=sandbox.env())  # fmt: skip
    assert res.exit_code == 0, res.stderr
    by_row = {r["row"]: r for r in map(json.loads, res.stdout.splitlines())}
    assert by_row[2]["id"] == pre.stdout.strip()  # found, not sent again
    assert by_row[3]["status"] == "accepted"  # never reached the server: sent now
    held = Counter(m["to"] for m in sandbox.messages() if m["to"].startswith("lost-"))
    assert held == Counter({"lost-0@example.com": 1, "lost-1@example.com": 1})


@pytest.mark.parametrize(
    "limit",
    [60, 400, 3000],  # the journal's first record / a pending record / the results fail
)
def test_disk_full_batch_journal(sandbox: Sandbox, tmp_path: Path, limit: int) -> None:
    tag = f"full{limit}"
    src = write_people(tmp_path / "rows.csv", 60, tag)
    journal = tmp_path / "rows.csv.outkit-journal"
    env = child_env()
    env.update(sandbox.env())
    args = [sys.executable, "-m", "outkit_cli", "send", "--batch", str(src), "--project",
            "demo", "--template", "welcome"]  # fmt: skip
    proc = subprocess.run(
        args, capture_output=True, env=env, preexec_fn=_file_size_limit(limit), timeout=60
    )
    stderr = proc.stderr.decode()
    assert proc.returncode == 2, stderr
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: cannot write batch journal {journal}: File too large (run the same command "
        "again to send the rest)" + ("; the batch was stopped" if limit == 3000 else "")
    ]
    # no half-written record: the rerun can read and extend the journal
    assert journal.read_bytes() == b"" or journal.read_bytes().endswith(b"\n")
    rerun = subprocess.run(args, capture_output=True, env=env, timeout=60)
    assert rerun.returncode == 0, rerun.stderr.decode()
    held = Counter(m["to"] for m in sandbox.messages() if m["to"].startswith(f"{tag}-"))
    assert held == Counter(f"{tag}-{i}@example.com" for i in range(60))


def test_a_torn_journal_record_is_cut_off_before_appending(sandbox, tmp_path):
    src = write_people(tmp_path / "torn.csv", 3, "torn")
    journal = tmp_path / "torn.csv.outkit-journal"
    args = ("send", "--batch", str(src), "--project", "demo", "--template", "welcome")
    assert run(*args, env=sandbox.env()).exit_code == 0
    # as if the process died after sending the last row, in the middle of its result record
    lines = journal.read_bytes().splitlines(keepends=True)
    assert b'"type":"result"' in lines[-1]
    journal.write_bytes(b"".join(lines[:-1]) + lines[-1][:25])
    # the first rerun finds the row in doubt on the server and journals it; the second one
    # reads what the first appended
    for _ in range(2):
        res = run(*args, env=sandbox.env())
        assert res.exit_code == 0, res.stderr
        assert {r["status"] for r in map(json.loads, res.stdout.splitlines())} == {"skipped"}
    assert journal.read_bytes().endswith(b"\n")
    assert set(
        Counter(m["to"] for m in sandbox.messages() if m["to"].startswith("torn-")).values()
    ) == {1}


# --- a server whose clock is off ------------------------------------------------------------


@pytest.fixture(scope="module")
def skewed(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A sandbox whose clock runs ten minutes ahead."""
    box = launch(tmp_path_factory.mktemp("skewed"), extra_args=("--clock-skew", "600"))
    yield box
    box.stop()


def _date_header(box: Sandbox) -> float:
    import http.client
    from email.utils import parsedate_to_datetime
    from urllib.parse import urlsplit

    parts = urlsplit(box.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request("GET", "/v1/messages")
        resp = conn.getresponse()
        resp.read()
        return parsedate_to_datetime(resp.getheader("Date")).timestamp()
    finally:
        conn.close()


def test_skewed_sandbox_date_header_shows_its_clock(skewed: Sandbox) -> None:
    assert abs(_date_header(skewed) - (time.time() + 600)) < 5


def test_send_to_a_skewed_server_explains_the_clock(skewed: Sandbox) -> None:
    res = run("send", "--project", "demo", "--template", "welcome", "--to", "x@example.com",
              env=skewed.env())  # fmt: skip
    assert res.exit_code == 3
    lines = res.stderr.splitlines()
    assert len(lines) == 1, lines
    # the server's reason (its own time) and the client's reading of the Date header agree
    assert "stale timestamp" in lines[0] and "server time is" in lines[0]
    assert "your clock is 10.0 min behind the server's" in lines[0]
    assert skewed.secret not in res.output and skewed.passphrase not in res.output
    # nothing was stored (the API itself refuses our clock: look in its database)
    import sqlite3

    conn = sqlite3.connect(skewed.data_dir / "sandbox.sqlite3")
    try:
        assert conn.execute("SELECT count(*) FROM messages").fetchone() == (0,)
    finally:
        conn.close()


def test_keys_test_against_a_skewed_server(skewed: Sandbox) -> None:
    res = run("keys", "test", env=skewed.env())
    assert res.exit_code == 3
    assert res.stdout == ""
    (line,) = res.stderr.splitlines()
    assert line.startswith("error: authentication failed: stale timestamp")
    assert "your clock is 10.0 min behind the server's" in line


def test_a_skew_inside_the_window_is_accepted_and_reported(start_sandbox) -> None:
    box = start_sandbox(extra_args=("--clock-skew", "-120"))
    res = run("keys", "test", "--json", env=box.env())
    assert res.exit_code == 0, res.stderr
    report = json.loads(res.stdout)
    assert abs(report["clock_skew_s"] + 120) < 5
    assert report["clock_ok"] is False  # accepted, but worth a warning
    human = run("keys", "test", env=box.env())
    assert "your clock is 2.0 min ahead of the server's" in human.stdout


@pytest.mark.parametrize("value", ["nan", "inf", "1e12", "soon"])
def test_clock_skew_option_refuses_non_numbers(value: str) -> None:
    res = run("serve", "--port", "0", "--clock-skew", value)
    assert res.exit_code == 2
    assert res.stderr.startswith("error: Invalid value for '--clock-skew'")
    assert len(res.stderr.splitlines()) == 1


def test_results_to_a_device_is_refused_before_anything_is_sent(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """--results must be a regular file of the user's (fsutil.open_private); the full-disk
    case of a results file is the stdout one below."""
    src = write_people(tmp_path / "rows.csv", 3, "devfullresults")
    args = ("send", "--batch", str(src), "--project", "demo", "--template", "welcome")
    res = run(*args, "--results", "/dev/full", env=sandbox.env())
    assert res.exit_code == 2, res
    assert res.stderr == "error: cannot write --results /dev/full: not a regular file\n"
    assert not [m for m in sandbox.messages() if m["to"].startswith("devfullresults-")]


@pytest.mark.parametrize("where", ["stdout"])
def test_results_on_a_full_disk(sandbox: Sandbox, tmp_path: Path, where: str) -> None:
    """/dev/full: every write fails with ENOSPC. The rows that went out are journalled, so
    the rerun reports them (skipped, with their ids) and sends the rest, each once."""
    tag = f"devfull{where.strip('-')}"
    src = write_people(tmp_path / "rows.csv", 100, tag)
    env = child_env()
    env.update(sandbox.env())
    args = [sys.executable, "-m", "outkit_cli", "send", "--batch", str(src), "--project",
            "demo", "--template", "welcome"]  # fmt: skip
    with open("/dev/full", "wb") as full:
        proc = subprocess.run(
            args + (["--results", "/dev/full"] if where == "--results" else []),
            stdout=subprocess.DEVNULL if where == "--results" else full,
            stderr=subprocess.PIPE,
            env=env,
            timeout=60,
        )
    stderr = proc.stderr.decode()
    assert proc.returncode == 2, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    shown = "/dev/full" if where == "--results" else "stdout"
    assert len(errors) == 1, stderr
    assert errors[0].startswith(
        f"error: cannot write the results to {shown}: No space left on device"
    )
    assert "Traceback" not in stderr
    rerun = subprocess.run(args, capture_output=True, env=env, timeout=60)
    assert rerun.returncode == 0, rerun.stderr.decode()
    rows = [json.loads(x) for x in rerun.stdout.decode().splitlines()]
    assert sorted(r["row"] for r in rows) == list(range(2, 102))
    assert {r["status"] for r in rows} <= {"skipped", "accepted"}
    assert all(r["id"] for r in rows)
    held = Counter(m["to"] for m in sandbox.messages() if m["to"].startswith(f"{tag}-"))
    assert held == Counter(f"{tag}-{i}@example.com" for i in range(100))
