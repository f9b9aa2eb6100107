"""`outkit serve` as a process: start-up, keys, profiles, stopping, durability, faults."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from outkit_cli.config import load_config
from outkit_cli.sandbox.faults import RATE_LIMIT_MAX, RATE_LIMIT_MIN, Faults, rate_limit_policy
from tests.helpers import run
from tests.sandbox_fixture import Sandbox
from tests.test_sandbox_api import WELCOME, call, error, post

Start = Callable[..., Sandbox]


def test_first_line_is_the_base_url_and_keys_are_private(start_sandbox: Start) -> None:
    sb = start_sandbox()
    assert sb.url.startswith("http://127.0.0.1:") and sb.url.endswith("/v1")
    keys_file = sb.data_dir / "keys.json"
    assert stat.S_IMODE(keys_file.stat().st_mode) == 0o600
    keys = json.loads(keys_file.read_text())["keys"]
    assert [(k["name"], k["signed"]) for k in keys] == [
        ("sandbox", True),
        ("sandbox-unsigned", False),
    ]
    assert all(k["key"] and k["passphrase"] and k["secret"] for k in keys)


def test_sigterm_stops_cleanly_and_a_restart_keeps_keys_and_messages(
    start_sandbox: Start, tmp_path: Path
) -> None:
    first = start_sandbox(data_dir=tmp_path / "data")
    _, doc = post(first, {**WELCOME, "sync": True})
    first.stop()
    assert first.process.returncode == 0
    assert "Traceback" not in first.log()
    second = start_sandbox(data_dir=tmp_path / "data")
    assert (second.key, second.secret) == (first.key, first.secret)
    status, _, got = call(second, "GET", f"/messages/{doc['data']['id']}")
    assert status == 200 and got["data"]["status"] == "delivered"


def test_ctrl_c_right_after_start_stops_cleanly(start_sandbox: Start) -> None:
    sb = start_sandbox()
    sb.process.send_signal(signal.SIGINT)  # as soon as the URL line was read
    assert sb.process.wait(10) == 0
    assert "Traceback" not in sb.log() and "Aborted" not in sb.log()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_while_starting_stops_it_once_started_with_exit_0(
    start_sandbox: Start, tmp_path: Path, signum: int
) -> None:
    # a supervisor that gives up at once: the signal comes before the URL line
    from outkit_cli.sandbox.datalock import LOCK_NAME
    from tests.sandbox_fixture import _child_env, _interruptible

    data = tmp_path / "data"
    proc = subprocess.Popen(
        [sys.executable, "-m", "outkit_cli", "serve", "--port", "0", "--data-dir", str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_child_env(),
        preexec_fn=_interruptible,
    )
    deadline = time.monotonic() + 30
    while not (data / LOCK_NAME).exists():  # serve's own code runs: the lock is taken
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.001)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert b"Traceback" not in err and b"Aborted" not in err
    # whatever it had started is whole: the next start uses the same data dir
    sb = start_sandbox(data_dir=data)
    assert post(sb, {**WELCOME, "sync": True})[1]["data"]["status"] == "delivered"


def test_kill_9_loses_no_accepted_message(start_sandbox: Start, tmp_path: Path) -> None:
    first = start_sandbox(data_dir=tmp_path / "data")
    ids = [post(first, {**WELCOME, "id_from_submitter": f"k{i}"})[1]["data"]["id"]
           for i in range(40)]  # fmt: skip
    first.kill()
    second = start_sandbox(data_dir=tmp_path / "data")
    # every answered message is there, and the ones the worker had not finished resume
    for message_id in ids:
        assert second.wait_done(message_id)["status"] == "delivered"
    assert {m["id"] for m in second.messages()} >= set(ids)


def test_init_profile_writes_a_working_profile(start_sandbox: Start, tmp_path: Path) -> None:
    config = tmp_path / "cfg" / "config.toml"
    sb = start_sandbox(extra_args=("--init-profile",), env={"OUTKIT_CONFIG": str(config)})
    prof = load_config(config)["profiles"]["sandbox"]
    assert prof == {
        "key": sb.key,
        "passphrase": sb.passphrase,
        "secret": sb.secret,
        "signed": True,
        "api_url": sb.url,
        "project": "demo",
    }
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    named = start_sandbox(
        extra_args=("--init-profile", "local"), env={"OUTKIT_CONFIG": str(config)}
    )
    data = load_config(config)
    assert data["profiles"]["local"]["api_url"] == named.url
    assert data["default_profile"] == "sandbox"  # an existing default is left alone


def test_rate_limit_answers_429_with_retry_after(start_sandbox: Start) -> None:
    import concurrent.futures

    sb = start_sandbox(rate_limit=2)
    # 20 at once: a burst of 2 passes, and however slowly a loaded machine answers them
    # (4 one after the other took over the 0.5 s a new token takes), at most 2 more a
    # second; the rest are refused
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda _: call(sb, "GET", "/messages?limit=1"), range(20)))
    passed = [a for a in answers if a[0] == 200]
    limited = [a for a in answers if a[0] == 429]
    assert len(passed) >= 2 and len(passed) + len(limited) == 20
    assert limited
    _, headers, doc = limited[0]
    assert int(headers["Retry-After"]) >= 1
    assert error(doc)[0] == "rate_limited" and "2 per second" in error(doc)[1]
    time.sleep(1.05)
    assert call(sb, "GET", "/messages?limit=1")[0] == 200
    # the limit is per key: the unsigned key has its own allowance
    assert call(sb, "GET", "/messages?limit=1", auth="unsigned")[0] == 200


def test_rate_limit_under_one_per_second(start_sandbox: Start) -> None:
    sb = start_sandbox(rate_limit=0.5)
    first, second = call(sb, "GET", "/messages?limit=1"), call(sb, "GET", "/messages?limit=1")
    assert first[0] == 200 and second[0] == 429
    assert int(second[1]["Retry-After"]) == 2


def test_rate_limit_is_advertised_on_every_answer_to_the_key(start_sandbox: Start) -> None:
    """RateLimit-Policy and RateLimit (IETF draft-ietf-httpapi-ratelimit-headers) on the
    key's 200s and 429s, so clients can pace themselves; 2.5/s is 5 per 2 s in integers."""
    sb = start_sandbox(rate_limit=2.5)
    answers = [call(sb, "GET", "/messages?limit=1") for _ in range(6)]
    assert {a[0] for a in answers} == {200, 429}
    for _, headers, _ in answers:
        assert headers["RateLimit-Policy"] == '"default";q=5;w=2'
        found = re.fullmatch(r'"default";r=(\d+);t=(\d+)', headers["RateLimit"])
        assert found, headers["RateLimit"]
        assert 0 <= int(found[1]) <= 2 and 0 <= int(found[2]) <= 1
    assert answers[0][1]["RateLimit"] == '"default";r=1;t=1'  # a full bucket of 2.5, less 1
    # no key, no limit to tell of
    status, headers, _ = call(sb, "GET", "/messages?limit=1", auth="none")
    assert status == 401 and "RateLimit-Policy" not in headers


@pytest.mark.parametrize(
    ("rate", "policy"),
    [(0.001, '"default";q=1;w=1000'), (1_000_000, '"default";q=1000000;w=1')],
)
def test_rate_limits_at_the_ends_of_the_range_advertise_valid_fields(
    start_sandbox: Start, rate: float, policy: str
) -> None:
    sb = start_sandbox(rate_limit=rate)
    status, headers, _ = call(sb, "GET", "/messages?limit=1")
    assert status == 200
    assert headers["RateLimit-Policy"] == policy
    if rate < 1:
        status, headers, _ = call(sb, "GET", "/messages?limit=1")
        assert status == 429 and int(headers["Retry-After"]) <= 1000


@given(st.floats(min_value=RATE_LIMIT_MIN, max_value=RATE_LIMIT_MAX))
def test_every_rate_in_range_advertises_an_rfc_9651_policy(rate: float) -> None:
    """RateLimit-Policy's q and w are Structured Field Integers (RFC 9651 section 3.3.1: at
    most 15 digits), q at least 1 (q=0 would say no request may pass), near the rate."""
    _, headers = Faults(rate_limit=rate).admit("k")
    found = re.fullmatch(
        r'"default";q=([1-9]\d{0,14});w=([1-9]\d{0,14})', headers["RateLimit-Policy"]
    )
    assert found, headers["RateLimit-Policy"]
    q, w = int(found[1]), int(found[2])
    assert abs(q / w - rate) <= max(rate * 0.01, 1 / 3600)
    assert re.fullmatch(r'"default";r=\d{1,15};t=\d{1,15}', headers["RateLimit"])


@pytest.mark.parametrize("rate", [math.nan, math.inf, 1e300, 1e-9, 0.0, -1.0])
def test_faults_refuse_a_rate_out_of_range(rate: float) -> None:
    with pytest.raises(ValueError, match=r"0\.001 to 1,000,000"):
        rate_limit_policy(rate)
    with pytest.raises(ValueError):
        Faults(rate_limit=rate)


def test_rate_limit_kept_secret_with_no_rate_limit_headers(start_sandbox: Start) -> None:
    sb = start_sandbox(rate_limit=1, extra_args=("--no-rate-limit-headers",))
    answers = [call(sb, "GET", "/messages?limit=1") for _ in range(3)]
    assert answers[0][0] == 200 and answers[-1][0] == 429
    for _, headers, _ in answers:
        assert not {"RateLimit-Policy", "RateLimit"} & set(headers)


def test_fail_rate_answers_503_and_does_nothing(start_sandbox: Start, tmp_path: Path) -> None:
    failing = start_sandbox(data_dir=tmp_path / "data", fail_rate=1.0)
    status, doc = post(failing, {**WELCOME, "sync": True})
    assert status == 503 and error(doc)[0] == "unavailable"
    failing.stop()
    healthy = start_sandbox(data_dir=tmp_path / "data")
    assert healthy.messages() == []
    assert not list((healthy.outbox() / "new").iterdir())


def test_latency_is_added_to_every_response(start_sandbox: Start) -> None:
    sb = start_sandbox(latency=300)
    for auth in ("signed", "none"):
        started = time.monotonic()
        call(sb, "GET", "/messages?limit=1", auth=auth)
        assert time.monotonic() - started >= 0.3


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--smtp", "nohost"], "--smtp: expected HOST:PORT"),
        (["--fail-rate", "2"], "--fail-rate"),
        (["--rate-limit", "0"], "--rate-limit"),
        # nan started, then every /v1 request was a 500; inf too; 1e300 advertised a
        # 301-digit q, 1e-9 q=0 and Retry-After 1000000000
        (["--rate-limit", "nan"], "--rate-limit': nan is out of range"),
        (["--rate-limit", "inf"], "from 0.001 to 1,000,000"),
        (["--rate-limit", "-inf"], "--rate-limit"),
        (["--rate-limit", "1e300"], "--rate-limit"),
        (["--rate-limit", "1000000.5"], "--rate-limit"),
        (["--rate-limit", "1e-9"], "--rate-limit"),
        (["--rate-limit", "0.0009"], "--rate-limit"),
        (["--fail-rate", "nan"], "--fail-rate"),
        (["--latency", "nan"], "--latency"),
        (["--latency", "inf"], "--latency"),
        (["--latency", "-1"], "--latency"),
        (["--port", "70000"], "--port"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(args: list[str], needle: str) -> None:
    result = run("serve", *args)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert needle in result.stderr


def test_data_dir_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("x")
    result = run("serve", "--port", "0", "--data-dir", str(path))
    assert result.exit_code == 2 and result.stderr.startswith("error: ")
    assert "Traceback" not in result.output


def test_corrupt_keys_file_is_reported_not_replaced(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "keys.json").write_text("{oops")
    result = run("serve", "--port", "0", "--data-dir", str(data))
    assert result.exit_code == 2 and "keys.json is not a valid keys file" in result.stderr
    assert (data / "keys.json").read_text() == "{oops"


def test_port_in_use_is_a_clear_error(sandbox: Sandbox, tmp_path: Path) -> None:
    port = sandbox.url.split(":")[2].split("/")[0]
    result = run("serve", "--port", port, "--data-dir", str(tmp_path / "d"))
    assert result.exit_code == 2 and f"127.0.0.1:{port}" in result.stderr


CHECK_IMPORTS = """
import sys
from outkit_cli.cli import main
try:
    main(["serve", "--help"])
except SystemExit as exc:
    code = exc.code
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("requests", "rich"))
print("HEAVY", heavy, "code", code, "serve" , "outkit_cli.commands.serve" in sys.modules)
"""


def test_serve_help_imports_neither_requests_nor_rich() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CHECK_IMPORTS], capture_output=True, text=True, timeout=60
    )
    assert "--init-profile" in proc.stdout
    assert "HEAVY [] code 0 serve True" in proc.stdout


def test_default_data_dir_is_the_user_data_dir(tmp_path: Path) -> None:
    data_home = tmp_path / "xdg-data"  # platformdirs honours XDG_DATA_HOME on Linux
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTKIT_")}
    env["XDG_DATA_HOME"] = str(data_home)
    proc = subprocess.Popen(
        [sys.executable, "-m", "outkit_cli", "serve", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith(b"http://127.0.0.1:")
        assert (data_home / "outkit" / "sandbox" / "keys.json").is_file()
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0 and str(data_home / "outkit" / "sandbox") in err.decode()


def test_other_hosts_get_a_warning(tmp_path: Path) -> None:
    # 192.0.2.1 is TEST-NET-1, on no interface here: the warning, then a clean bind error
    result = run("serve", "--host", "192.0.2.1", "--port", "0", "--data-dir", str(tmp_path))
    lines = result.stderr.splitlines()
    assert result.exit_code == 2 and len(lines) == 2
    assert lines[0].startswith("warning: binding to 192.0.2.1: anyone who can reach this port")
    assert "send mail through the configured SMTP server" in lines[0]
    assert "read every stored message" in lines[0]
    assert lines[1].startswith("error: cannot start the sandbox on 192.0.2.1:0")


def test_parse_hostport() -> None:
    from outkit_cli.sandbox.runner import parse_hostport

    assert parse_hostport("[::1]:2525") == ("::1", 2525)


@pytest.mark.parametrize(
    ("bound", "url"),
    [
        ("0.0.0.0", "http://127.0.0.1:8025/v1"),
        ("::", "http://[::1]:8025/v1"),
        ("127.0.0.1", "http://127.0.0.1:8025/v1"),
        ("::1", "http://[::1]:8025/v1"),
    ],
)
def test_a_wildcard_bind_gets_a_loopback_url_the_cli_accepts(bound: str, url: str) -> None:
    # (tests bind loopback only: the URL rule is checked on the address a bind reports)
    from outkit_cli.client import check_api_url
    from outkit_cli.sandbox.runner import api_url

    assert api_url(bound, 8025) == url
    assert check_api_url(url) == url


@pytest.mark.parametrize("name", ["bad name", ".x", "a/b", "x\u202e", ""])
def test_init_profile_name_is_checked_like_keys_add(tmp_path: Path, name: str) -> None:
    config = tmp_path / "config.toml"
    result = run(
        "serve", "--port", "0", "--data-dir", str(tmp_path / "d"), "--init-profile", name,
        env={"OUTKIT_CONFIG": str(config)},
    )  # fmt: skip
    added = run("keys", "add", name, "--key", "k", env={"OUTKIT_CONFIG": str(config)})
    assert result.exit_code == added.exit_code == 2
    assert result.stderr.splitlines()[-1] == added.stderr.splitlines()[-1]
    assert "profile name" in result.stderr
    assert not config.exists() and not (tmp_path / "d").exists()  # nothing was started


def test_loopback_spellings_draw_no_warning(start_sandbox: Start) -> None:
    sb = start_sandbox(extra_args=("--host", "127.1"))
    assert sb.url.startswith("http://127.0.0.1:")
    assert "warning" not in sb.log()
