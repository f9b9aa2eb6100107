"""The transport rules (docs/network.md) for every command that talks HTTP: send,
send --batch, get, get --wait and keys test, each run through the real `main()` against
small loopback servers (tests/netservers.py): a proxy, a TLS server with a private CA made
for the run, a trickling server, huge answers, a server closing keep-alive connections, a
307. Every command shares one transport, so each rule must hold for all five."""

from __future__ import annotations

import json
import os
import re
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from outkit_cli.config import save_profile
from tests.helpers import Result, run
from tests.netservers import (
    API_HOST,
    PrivateCA,
    api_server,
    closed_port,
    connect_proxy,
    make_private_ca,
)

CREDS = {
    "OUTKIT_ACCESS_KEY": "k1",
    "OUTKIT_ACCESS_PASSPHRASE": "pp-1",
    "OUTKIT_ACCESS_SECRET": "s3cr3t-value",
}


@dataclass
class Command:
    name: str
    args: Callable[[Path], list[str]]

    def run(self, url: str, tmp: Path, *extra: str, env: dict[str, str] | None = None) -> Result:
        return run(*self.args(tmp), *extra, env={**CREDS, "OUTKIT_API_URL": url, **(env or {})})


def _batch_args(tmp: Path) -> list[str]:
    rows = tmp / "rows.csv"
    rows.write_text("to\na@example.com\n")
    journal = tmp / f"journal-{time.monotonic_ns()}"
    return ["send", "--batch", str(rows), "--project", "demo", "--text-body", "x",
            "--journal", str(journal)]  # fmt: skip


SEND = ["send", "--to", "a@example.com", "--project", "demo", "--text-body", "x"]
COMMANDS = [
    Command("send", lambda t: SEND),
    Command("send --batch", _batch_args),
    Command("get", lambda t: ["get", "m-1"]),
    Command("get --wait", lambda t: ["get", "m-2", "--wait", "--wait-timeout", "30"]),
    Command("keys test", lambda t: ["keys", "test"]),
]


@pytest.fixture(params=COMMANDS, ids=[c.name for c in COMMANDS])
def command(request: pytest.FixtureRequest) -> Command:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def private_ca(tmp_path_factory: pytest.TempPathFactory) -> PrivateCA:
    return make_private_ca(tmp_path_factory.mktemp("private-ca"))


@pytest.fixture
def tls_api(private_ca: PrivateCA) -> Iterator[tuple[str, object]]:
    with api_server(tls=private_ca.server_context()) as server:
        yield server


def assert_one_clean_line(result: Result) -> None:
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "Traceback" not in result.stderr
    if lines:
        assert '"))' not in lines[0] and "object at 0x" not in lines[0], lines[0]


# --------------------------------------------------------------------- keep-alive, redirects


def test_plain_loopback_keeps_connections_alive(command: Command, tmp_path: Path) -> None:
    with api_server() as (url, seen):
        result = command.run(url, tmp_path)
    assert result.exit_code == 0, result.stderr
    assert seen.requests and seen.connections <= len(seen.requests)


def test_server_closing_keep_alive_connections(command: Command, tmp_path: Path) -> None:
    """Each answer ends its connection (without `Connection: close`): the next request
    goes on a new one, nothing is reported, nothing is sent twice."""
    with api_server("close") as (url, seen):
        result = command.run(url, tmp_path)
    assert result.exit_code == 0, result.stderr
    posts = [r for r in seen.requests if r["method"] == "POST"]
    assert len(posts) == (1 if command.name.startswith("send") else 0)


def _batch_outcome(result: Result) -> dict[str, object]:
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1, result.output
    return lines[0]  # type: ignore[no-any-return]


def test_batch_row_whose_answer_is_lost_is_looked_up_and_sent_again(tmp_path: Path) -> None:
    """The server drops the first two POSTs unanswered (a connection it closed as the request
    came): each time the row is looked up, not found, and sent again; it ends accepted,
    and the server holds it once."""
    with api_server(drop_posts=2) as (url, seen):
        result = COMMANDS[1].run(url, tmp_path)
    assert result.exit_code == 0, result.output
    assert _batch_outcome(result)["status"] == "accepted"
    assert seen.dropped == 2
    assert [r["method"] for r in seen.requests].count("POST") == 1
    lookups = [r for r in seen.requests if "id_from_submitter=" in r["path"]]
    # the filter probe (docs/batch.md), before the first send, before each resend, and
    # the check that lookups find the message the run created
    assert len(lookups) == 5


def test_batch_row_lost_every_time_ends_unknown_not_sent_forever(tmp_path: Path) -> None:
    """Lost on every try: after three lookups and resends the row is `unknown` (exit 8),
    the run ends, and a rerun resolves it (docs/batch.md)."""
    with api_server(drop_posts=100) as (url, seen):
        result = COMMANDS[1].run(url, tmp_path, "--retries", "3")
    assert result.exit_code == 8, result.output
    outcome = _batch_outcome(result)
    assert outcome["status"] == "unknown"
    assert seen.dropped == 4  # the first send and three rounds (--retries 3)
    assert "connection to 127.0.0.1" in str(outcome["error"])
    assert_one_clean_line(result)


def test_redirect_is_never_followed(command: Command, tmp_path: Path) -> None:
    with (
        api_server() as (elsewhere, elsewhere_seen),
        api_server("redirect", location=elsewhere + "/messages") as (url, seen),
    ):
        result = command.run(url, tmp_path, "--retries", "0")
    assert result.exit_code == 7, result.output
    assert elsewhere_seen.requests == []
    assert "307" in result.output
    assert len(seen.requests) >= 1
    assert_one_clean_line(result)


# --------------------------------------------------------------------- time and size


def test_trickling_answer_is_cut_at_the_timeout(command: Command, tmp_path: Path) -> None:
    """One byte a second: --timeout 2 bounds each request as a whole, not each read."""
    with api_server("trickle") as (url, _):
        started = time.monotonic()
        result = command.run(url, tmp_path, "--timeout", "2", "--retries", "0")
        elapsed = time.monotonic() - started
    assert result.exit_code == 8, result.output
    # the trickled answer takes over a minute
    assert elapsed < 20
    if command.name == "send --batch":
        # a first run looks the row up before sending it (docs/batch.md); that answer
        # trickles, so the row is not sent
        assert '"status": "failed"' in result.stdout
        assert "not sent: looking for it on the server failed" in result.stdout
    assert "within 2 s" in result.output
    assert_one_clean_line(result)


def _cut_at_the_timeout(result: Result, elapsed: float) -> None:
    assert result.exit_code == 8, result.output
    # each hostile answer takes a minute or more; --timeout 2 with no retries must end it
    # in about 2 s (20 leaves room for a loaded machine)
    assert elapsed < 20, elapsed
    assert "within 2 s" in result.output, result.output
    assert_one_clean_line(result)


@pytest.mark.parametrize("mode", ["trickle-head", "trickle-chunked", "silent"])
def test_hostile_answer_is_cut_at_the_timeout(command: Command, tmp_path: Path, mode: str) -> None:
    """The status line and headers trickled, a chunked body trickled chunk by chunk, or no
    answer at all: the timeout bounds the request whatever part of the answer is slow."""
    with api_server(mode) as (url, _):
        started = time.monotonic()
        result = command.run(url, tmp_path, "--timeout", "2", "--retries", "0")
        _cut_at_the_timeout(result, time.monotonic() - started)


@pytest.mark.parametrize("mode", ["mute", "trickle-handshake"])
def test_stalled_tls_handshake_is_cut_at_the_timeout(
    command: Command, tmp_path: Path, mode: str
) -> None:
    """A server that accepts and never answers the ClientHello, or answers it one byte a
    second: the handshake is part of the request the timeout bounds."""
    with api_server(mode) as (url, _):
        url = url.replace("http://127.0.0.1", "https://localhost")
        started = time.monotonic()
        result = command.run(url, tmp_path, "--timeout", "2", "--retries", "0")
        _cut_at_the_timeout(result, time.monotonic() - started)


def test_trickling_proxy_is_cut_at_the_timeout(command: Command, tmp_path: Path) -> None:
    """The proxy's answer to CONNECT one byte a second."""
    with connect_proxy(closed_port(), trickle=True) as (proxy, log):
        started = time.monotonic()
        result = command.run(f"https://{API_HOST}/v1", tmp_path, "--timeout", "2",
                             "--retries", "0", env={"HTTPS_PROXY": proxy})  # fmt: skip
        _cut_at_the_timeout(result, time.monotonic() - started)
    assert log  # the request did go to the proxy


@pytest.mark.parametrize("command", COMMANDS[:2], ids=["send", "send --batch"])
def test_server_reading_the_request_slowly_is_cut_at_the_timeout(
    command: Command, tmp_path: Path
) -> None:
    """A server reading a POST's body one byte a second: sending is part of the request."""
    body = tmp_path / "body.txt"
    body.write_text("x" * (24 * 1024 * 1024))  # more than the socket buffers hold
    with api_server("slow-read") as (url, _):
        started = time.monotonic()
        result = command.run(url, tmp_path, "--timeout", "2", "--retries", "0",
                             "--text-body", f"@{body}")  # fmt: skip
        elapsed = time.monotonic() - started
    assert result.exit_code == 8, result.output[-2000:]
    # a batch looks the row up and sends it again, three rounds (docs/batch.md): 4 x 2 s
    assert elapsed < 40, elapsed
    assert "within 2 s" in result.output, result.output[-2000:]
    assert_one_clean_line(result)


def test_retry_after_on_every_answer_is_not_waited_out_past_the_budget(
    command: Command, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 503 with Retry-After: 2 on every answer and --retries 20: the waits of one
    request add up to at most MAX_RETRY_AFTER (lowered to 5 s here), then the command
    fails saying why, instead of waiting 20 x 2 s."""
    import outkit_cli.client as client_module

    monkeypatch.setattr(client_module, "MAX_RETRY_AFTER", 5.0)
    with api_server("retry-after", retry_after="2") as (url, seen):
        started = time.monotonic()
        result = command.run(url, tmp_path, "--timeout", "2", "--retries", "20")
        elapsed = time.monotonic() - started
    assert result.exit_code in (7, 8), result.output
    assert elapsed < 30, elapsed
    if command.name == "send":
        # a 503 to a POST is never retried (it may have been taken: docs/network.md)
        assert result.exit_code == 8 and "Not retried, to avoid sending it twice" in (result.output)
        assert len(seen.requests) == 1
        return
    assert "over 5 s in all for one request: not retrying" in result.output, result.output
    assert 3 <= len(seen.requests) <= 8  # two waits of 2 s, not twenty
    assert_one_clean_line(result)


@pytest.mark.parametrize("mode", ["huge", "huge-stream"])
def test_huge_answer_is_cut_off(command: Command, tmp_path: Path, mode: str) -> None:
    with api_server(mode) as (url, _):
        result = command.run(url, tmp_path, "--retries", "0")
    assert result.exit_code == 8, result.output
    assert "larger than 64 MiB; cut off" in result.output
    assert_one_clean_line(result)


# Run by a fresh interpreter that starts `outkit` and reports its rusage: a child's
# ru_maxrss starts at the peak of the process that spawned it (Linux keeps the old memory's
# high-water mark across exec), and a pytest worker that ran the in-process huge-answer
# tests has peaked near 300 MB; this launcher is a bare interpreter of about 10 MB.
_PEAK_RSS = """
import json, os, subprocess, sys
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(proc.pid, 0)
print(json.dumps({"code": os.waitstatus_to_exitcode(status), "maxrss_kib": usage.ru_maxrss}))
"""


def test_huge_answer_does_not_fill_memory() -> None:
    """The 400 MB answer that once took `get` to 1.26 GB: the child's peak stays small."""
    with api_server("huge-stream") as (url, _):
        env = {**os.environ, **CREDS, "OUTKIT_API_URL": url}
        proc = subprocess.run(
            [sys.executable, "-c", _PEAK_RSS,
             sys.executable, "-m", "outkit_cli", "get", "m-1", "--retries", "0"],
            env=env, capture_output=True, timeout=300,
        )  # fmt: skip
    stderr = proc.stderr.decode()
    assert proc.returncode == 0, stderr
    child = json.loads(proc.stdout)
    assert child["code"] == 8, stderr
    assert "larger than 64 MiB" in stderr
    assert child["maxrss_kib"] / 1024 < 200  # MiB (ru_maxrss is in KiB on Linux)


# --------------------------------------------------------------------- TLS and CAs


def test_private_ca_untrusted_by_default(command: Command, tmp_path: Path, tls_api) -> None:
    url, _ = tls_api
    result = command.run(url, tmp_path, "--retries", "0")
    assert result.exit_code == 8, result.output
    assert "TLS error" in result.output and "certificate verify failed" in result.output
    assert_one_clean_line(result)


@pytest.mark.parametrize(
    "source",
    ["ca_bundle", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR"],
)
def test_private_ca_trusted_from_each_source(
    command: Command,
    tmp_path: Path,
    tls_api,
    private_ca: PrivateCA,
    source: str,
    config_file: Path,
) -> None:
    url, _ = tls_api
    env: dict[str, str] = {}
    if source == "ca_bundle":
        ca = str(private_ca.ca_cert)
        save_profile(config_file, "p", {"key": "k1", "passphrase": "pp-1", "secret": "s",
                                        "api_url": url, "ca_bundle": ca})  # fmt: skip
    elif source == "SSL_CERT_DIR":
        env[source] = str(private_ca.hashed_dir)
    else:
        env[source] = str(private_ca.ca_cert)
    result = command.run(url, tmp_path, env=env)
    assert result.exit_code == 0, result.output


def test_profile_ca_bundle_comes_before_the_environment(
    tmp_path: Path, tls_api, private_ca: PrivateCA, config_file: Path, cert: tuple[Path, Path]
) -> None:
    url, _ = tls_api
    save_profile(config_file, "p", {"key": "k1", "passphrase": "pp-1", "secret": "s",
                                    "api_url": url, "ca_bundle": str(cert[0])})  # fmt: skip
    result = COMMANDS[2].run(url, tmp_path, "--retries", "0",
                             env={"REQUESTS_CA_BUNDLE": str(private_ca.ca_cert)})  # fmt: skip
    assert result.exit_code == 8 and "TLS error" in result.stderr


def test_tls_below_1_2_is_refused(command: Command, tmp_path: Path, private_ca: PrivateCA) -> None:
    try:
        ctx = private_ca.server_context(max_version=ssl.TLSVersion.TLSv1_1)
    except (ssl.SSLError, ValueError):
        pytest.skip("this OpenSSL cannot serve TLS 1.1 at all")
    with api_server(tls=ctx) as (url, seen):
        result = command.run(url, tmp_path, "--retries", "0",
                             env={"REQUESTS_CA_BUNDLE": str(private_ca.ca_cert)})  # fmt: skip
    assert result.exit_code == 8, result.output
    assert "TLS error" in result.output
    assert seen.requests == []


# --------------------------------------------------------------------- proxies


@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"])
def test_https_api_goes_through_the_proxy(
    command: Command, tmp_path: Path, tls_api, private_ca: PrivateCA, variable: str
) -> None:
    """The API host is a name only the proxy knows: the request can only have gone there."""
    url, seen = tls_api
    proxy_for_tls = url.rsplit(":", 1)[1].split("/")[0]
    with connect_proxy(int(proxy_for_tls)) as (proxy, log):
        proxy_url = proxy.replace("http://", "http://user:p%40ss@")
        result = command.run(f"https://{API_HOST}/v1", tmp_path, env={
            variable: proxy_url, "REQUESTS_CA_BUNDLE": str(private_ca.ca_cert)})  # fmt: skip
    assert result.exit_code == 0, result.output
    assert log and all(entry.startswith(f"{API_HOST}:443 | Basic ") for entry in log)
    assert seen.requests  # reached the API through the tunnel
    assert "p@ss" not in result.output


def test_loopback_is_never_proxied(command: Command, tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{closed_port()}"
    env = {"HTTP_PROXY": dead, "http_proxy": dead, "HTTPS_PROXY": dead, "ALL_PROXY": dead}
    with api_server() as (url, seen):
        for host in ("127.0.0.1", "localhost"):
            result = command.run(url.replace("127.0.0.1", host), tmp_path, env=env)
            assert result.exit_code == 0, result.output
    assert seen.requests


def test_unreachable_proxy_is_named_in_the_error(command: Command, tmp_path: Path) -> None:
    port = closed_port()
    result = command.run(
        f"https://{API_HOST}/v1", tmp_path, "--retries", "0",
        env={"HTTPS_PROXY": f"http://user:secret-pw@127.0.0.1:{port}"},
    )  # fmt: skip
    assert result.exit_code == 8, result.output
    line = f"cannot connect to proxy http://127.0.0.1:{port} (from HTTPS_PROXY): "
    assert line + "Connection refused" in result.output
    assert "Errno" not in result.output and "host=" not in result.output
    assert "secret-pw" not in result.output
    assert_one_clean_line(result)


def test_unsupported_proxy_scheme_is_a_usage_error(command: Command, tmp_path: Path) -> None:
    result = command.run(f"https://{API_HOST}/v1", tmp_path,
                         env={"ALL_PROXY": "socks5://127.0.0.1:1080"})  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "a socks5:// proxy (from ALL_PROXY) is not supported" in result.stderr


# --------------------------------------------------------------------- the wire


def test_dry_run_shows_the_headers_sent(tmp_path: Path) -> None:
    """`send --dry-run` shows every header the transport puts on the wire, in order."""
    with api_server() as (url, seen):
        args = ["send", "--to", "a@example.com", "--project", "demo", "--text-body", "x"]
        dry = run(*args, "--dry-run", "--json", env={**CREDS, "OUTKIT_API_URL": url})
        sent = run(*args, env={**CREDS, "OUTKIT_API_URL": url})
    assert dry.exit_code == 0 and sent.exit_code == 0, dry.output + sent.output
    shown = json.loads(dry.stdout)["headers"]
    wire = seen.requests[0]["headers"]
    volatile = re.compile(r"Outkit-Access-(Timestamp|Signature)|Outkit-Access-Passphrase")
    assert [k for k in shown] == [k for k in wire]
    for name, value in wire.items():
        if not volatile.fullmatch(name):
            assert shown[name] == value, name


# --------------------------------------------------------------------- hostile values


@pytest.mark.parametrize("value", ["nan", "inf", "1e308", "86401"])
def test_timeouts_that_cannot_bound_anything_are_usage_errors(
    command: Command, tmp_path: Path, value: str
) -> None:
    with api_server() as (url, seen):
        result = command.run(url, tmp_path, "--timeout", value)
    assert result.exit_code == 2, result.output
    assert "--timeout must be more than 0 and at most 86400 seconds" in result.stderr
    assert seen.requests == []


@pytest.mark.parametrize("value", ["nan", "inf", "1e-300", "1e9"])
def test_rates_out_of_range_are_usage_errors(tmp_path: Path, value: str) -> None:
    with api_server() as (url, seen):
        result = COMMANDS[1].run(url, tmp_path, "--rate", value)
    assert result.exit_code == 2, result.output
    assert "--rate must be a number of messages per second from 0.001 to 100000" in result.stderr
    assert seen.requests == []


@pytest.mark.parametrize(
    "value", ["http://\x1b[31mevil:1", "http://[::1", "http://ho st:1", "http://h:99999"]
)
def test_malformed_proxy_urls_are_usage_errors_not_echoed(
    command: Command, tmp_path: Path, value: str
) -> None:
    result = command.run(f"https://{API_HOST}/v1", tmp_path, env={"HTTPS_PROXY": value})
    assert result.exit_code == 2, result.output
    assert "the proxy URL (from HTTPS_PROXY) is not supported" in result.stderr
    assert "\x1b" not in result.stderr and "evil" not in result.stderr
