"""The HTTP client: what the sandbox cannot show (lost answers, skewed clocks, TLS) runs
against small real servers on loopback; the rest against the sandbox."""

from __future__ import annotations

import contextlib
import email.utils
import json
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from outkit_cli import signing
from outkit_cli.client import (
    RETRY_AFTER_CAP,
    Backoff,
    Client,
    check_api_url,
    clock_skew,
    parse_retry_after,
)
from outkit_cli.config import Settings, save_profile
from outkit_cli.errors import UsageError
from tests.helpers import run, server_tls
from tests.netservers import QuietHandler, api_server, serving
from tests.sandbox_fixture import Sandbox

CREDS = {
    "OUTKIT_ACCESS_KEY": "k1",
    "OUTKIT_ACCESS_PASSPHRASE": "pp-1",
    "OUTKIT_ACCESS_SECRET": "s3cr3t-value",
}

# --------------------------------------------------------------------- a scripted server

Action = Any  # "close" | "hang" | (status, headers, body) | callable(handler)


@contextlib.contextmanager
def fake_api(
    *actions: Action, tls: ssl.SSLContext | None = None, date_offset: float = 0.0
) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A loopback HTTP server answering request N with actions[N] (the last one repeats).

    Yields (base URL, the requests it received). Each answer carries a Date header
    ``date_offset`` seconds off the real clock.
    """
    seen: list[dict[str, Any]] = []

    class Handler(QuietHandler):
        def _any(self) -> None:
            seen.append({**self.record(self.read_body()), "at": time.time()})
            action = actions[min(len(seen), len(actions)) - 1]
            if action == "close":  # read the request, then drop the connection unanswered
                self.close_connection = True
                return
            if action == "hang":  # no answer for longer than any test waits
                time.sleep(10)
                self.close_connection = True
                return
            status, headers, payload = action
            date = email.utils.formatdate(time.time() + date_offset, usegmt=True)
            self.send_json(status, payload, {"Date": date, **headers})

        do_GET = do_POST = _any

    with serving(Handler, tls=tls) as origin:
        yield f"{origin}/v1", seen


MESSAGE = {"id": "m-1", "status": "received", "done": False}
OK = (200, {}, {"data": MESSAGE})
SEND_ARGS = ("send", "--to", "a@example.com", "--project", "demo", "--text-body", "x")


def env_for(url: str) -> dict[str, str]:
    return {**CREDS, "OUTKIT_API_URL": url}


# --------------------------------------------------------------------- pure functions


def test_parse_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after("-4") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 7, usegmt=True)
    assert parse_retry_after(date, now=now) == pytest.approx(7.0)
    assert parse_retry_after(email.utils.formatdate(now - 60, usegmt=True), now=now) == 0.0


def test_clock_skew_from_date_header() -> None:
    now = 1_700_000_000.0
    assert clock_skew(email.utils.formatdate(now + 90, usegmt=True), now=now) == pytest.approx(90)
    assert clock_skew("garbage", now=now) is None
    assert clock_skew(None) is None


@pytest.mark.parametrize(
    "url",
    ["https://api.outkit.io/v1", "http://127.0.0.1:8025/v1/", "http://localhost/v1",
     "http://[::1]:99/v1", "http://127.3.4.5/v1"],
)  # fmt: skip
def test_allowed_api_urls(url: str) -> None:
    assert check_api_url(url) == url.rstrip("/")


@pytest.mark.parametrize(
    ("url", "fragment"),
    [("http://api.outkit.io/v1", "refusing plain http://"),
     ("http://10.0.0.1/v1", "refusing plain http://"),
     ("ftp://api.outkit.io/v1", "not an https:// URL"),
     ("api.outkit.io/v1", "not an https:// URL")],
)  # fmt: skip
def test_refused_api_urls(url: str, fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment):
        check_api_url(url)


def test_backoff_delays_grow_with_jitter_and_a_cap() -> None:
    b = Backoff(base=0.5, cap=4.0)
    for attempt, ceiling in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (8, 4.0)]:
        delays = [b.delay(attempt) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 100  # jittered, not fixed


def test_backoff_pause_is_shared_by_every_thread() -> None:
    """One 429 pauses all workers: every thread waits out the shared pause."""
    clock = {"t": 100.0}
    lock = threading.Lock()
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        with lock:
            slept.append(seconds)
            clock["t"] += seconds

    b = Backoff(sleep=sleep, clock=lambda: clock["t"])
    b.pause_all(2.0)
    b.pause_all(1.0)  # a shorter pause never shortens a longer one
    threads = [threading.Thread(target=b.wait_turn) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert slept and slept[0] == pytest.approx(2.0)
    assert b.paused_for() == 0


# --------------------------------------------------------------------- requests on the wire


def test_each_attempt_signed_fresh_over_the_exact_body() -> None:
    with fake_api((429, {"Retry-After": "1"}, {"error": {"message": "busy"}}), OK) as (url, seen):
        result = run(*SEND_ARGS, "--retries", "2", "--json", env=env_for(url))
    assert result.exit_code == 0, result.stderr
    assert len(seen) == 2
    assert seen[1]["at"] - seen[0]["at"] >= 0.9  # Retry-After honoured
    stamps = []
    for req in seen:
        h = req["headers"]
        assert req["path"] == "/v1/messages"
        assert h["User-Agent"].startswith("outkit-cli/")
        assert h["Content-Type"] == "application/json" and h["Accept"] == "application/json"
        assert signing.SECRET_HEADER not in h
        ts, sig = h[signing.TIMESTAMP_HEADER], h[signing.SIGNATURE_HEADER]
        secret = CREDS["OUTKIT_ACCESS_SECRET"]
        assert signing.verify(secret, ts, "POST", "/v1/messages", req["body"], sig)
        stamps.append(int(h[signing.TIMESTAMP_HEADER]))
    assert stamps[1] > stamps[0]
    assert seen[0]["body"] == seen[1]["body"]
    assert json.loads(seen[0]["body"])["message"]["text_body"] == "x"


def test_unsigned_key_sends_the_secret_header(config_file: Path) -> None:
    with fake_api(OK) as (url, seen):
        save_profile(config_file, "u", {"key": "k", "passphrase": "p", "secret": "sec",
                                        "api_url": url, "signed": False})  # fmt: skip
        result = run("get", "m-1", "--field", "id")
    assert result.exit_code == 0, result.stderr
    h = seen[0]["headers"]
    assert h[signing.SECRET_HEADER] == "sec"
    assert signing.SIGNATURE_HEADER not in h and signing.TIMESTAMP_HEADER not in h


def test_lost_post_is_not_retried() -> None:
    """The request reached the server, the answer never came: maybe created, so exit 8."""
    with fake_api("close") as (url, seen):
        result = run(*SEND_ARGS, "--id-from-submitter", "order-77", "--retries", "3",
                     env=env_for(url))  # fmt: skip
    assert result.exit_code == 8
    assert len(seen) == 1
    assert "may have been created" in result.stderr
    assert "order-77" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_post_read_timeout_is_not_retried() -> None:
    with fake_api("hang") as (url, seen):
        started = time.monotonic()
        result = run("--verbose", *SEND_ARGS, "--timeout", "0.3", "--retries", "3",
                     env=env_for(url))  # fmt: skip
        took = time.monotonic() - started
        # the server's thread records the request when the GIL lets it: on a loaded
        # machine that can be after the client gave up
        deadline = time.monotonic() + 30
        while not seen and time.monotonic() < deadline:
            time.sleep(0.01)
    assert result.exit_code == 8
    # sent once (the verbose log shows every request sent), and it arrived
    assert result.stderr.count("debug: > POST ") == 1, result.stderr
    assert len(seen) == 1
    assert "no complete answer from" in result.stderr and "within 0.3 s" in result.stderr
    assert "may have been created" in result.stderr
    assert took < 5  # the 0.3 s timeout, not the server's 10 s silence


def test_lost_get_answers_are_retried() -> None:
    with fake_api("close", OK) as (url, seen):
        result = run("get", "m-1", "--field", "status", "--retries", "1", env=env_for(url))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "received\n"
    assert len(seen) == 2


def test_401_reports_clock_skew() -> None:
    err = {"error": {"message": "timestamp too old", "code": "unauthorized"}}
    with fake_api((401, {}, err), date_offset=-600) as (url, _):
        result = run("get", "m-1", env=env_for(url))
    assert result.exit_code == 3
    assert "timestamp too old (HTTP 401, unauthorized)" in result.stderr
    assert "your clock is 10.0 min ahead of the server's" in result.stderr


def test_401_without_skew_says_nothing_about_clocks() -> None:
    with fake_api((401, {}, {"error": {"message": "bad key"}}), date_offset=2) as (url, _):
        result = run("get", "m-1", env=env_for(url))
    assert result.exit_code == 3
    assert "clock" not in result.stderr


def test_long_retry_after_is_not_waited_out() -> None:
    with fake_api((429, {"Retry-After": "3600"}, {"error": {"message": "slow down"}})) as (
        url,
        seen,
    ):
        result = run("get", "m-1", "--retries", "3", env=env_for(url))
    assert result.exit_code == 6
    assert "asks to wait 3600 s, not retrying" in result.stderr
    assert len(seen) == 1


@pytest.mark.parametrize(
    ("header", "shown"),
    [("1" + "0" * 400, "a day or more"), ("99999999999", "a day or more"),
     ("Fri, 31 Dec 9999 23:59:59 GMT", "a day or more"), ("3600.5", "3600 s")],
)  # fmt: skip
def test_huge_retry_after_is_a_day_in_the_error_line(header: str, shown: str) -> None:
    body = {"error": {"message": "slow down"}}
    with fake_api((429, {"Retry-After": header}, body)) as (url, seen):
        result = run("get", "m-1", "--retries", "3", env=env_for(url))
    assert result.exit_code == 6
    line = result.stderr.strip().splitlines()[-1]
    assert f"asks to wait {shown}, not retrying" in line
    assert len(line) < 200
    assert len(seen) == 1


@pytest.mark.parametrize("header", ["1e308", "inf", "-inf", "nan", "Infinity", "0x10", "+5", "1_0"])
def test_retry_after_that_is_not_delta_seconds_is_ignored(header: str) -> None:
    # RFC 9110 10.2.3: delta-seconds is digits; float() would take these, and 1e308 or inf
    # printed a 300-digit wait (attacker trial)
    assert parse_retry_after(header) is None
    body = {"error": {"message": "slow down"}}
    with fake_api((429, {"Retry-After": header}, body)) as (url, seen):
        result = run("get", "m-1", "--retries", "1", env=env_for(url))
    assert result.exit_code == 6
    assert "asks to wait" not in result.stderr and len(result.stderr) < 300
    assert len(seen) == 2  # retried after the usual backoff


def test_parse_retry_after_is_at_most_a_day() -> None:
    assert parse_retry_after("9" * 500) == RETRY_AFTER_CAP == 86400.0
    assert parse_retry_after(" 7 ") == 7.0


def test_non_json_success_is_a_server_error() -> None:
    with fake_api((200, {}, b"<html>hello</html>")) as (url, _):
        result = run("get", "m-1", env=env_for(url))
    assert result.exit_code == 7
    assert "not an Outkit JSON response" in result.stderr


def test_other_4xx_is_rejected_and_500_is_not_retried() -> None:
    with fake_api((400, {}, {"error": {"message": "bad", "code": "bad_data"}})) as (url, _):
        assert run("get", "m-1", env=env_for(url)).exit_code == 5
    with fake_api((500, {}, {"error": {"message": "boom"}})) as (url, seen):
        assert run("get", "m-1", "--retries", "3", env=env_for(url)).exit_code == 7
        assert len(seen) == 1
        # a POST answered 500 may have created the message: exit 8 (tests/test_double_sends)
        result = run(*SEND_ARGS, "--retries", "3", env=env_for(url))
    assert result.exit_code == 8 and len(seen) == 2


def test_timeout_and_retries_from_environment_and_profile(config_file: Path) -> None:
    with fake_api("close") as (url, seen):
        save_profile(config_file, "p", {**{k: "x" for k in ("key", "passphrase", "secret")},
                                        "api_url": url, "retries": 0})  # fmt: skip
        assert run("get", "m-1").exit_code == 8
        assert len(seen) == 1  # profile: retries = 0
        assert run("get", "m-1", env={"OUTKIT_RETRIES": "1"}).exit_code == 8
        assert len(seen) == 3  # environment beats profile
        assert run("get", "m-1", "--retries", "1", env={"OUTKIT_RETRIES": "0"}).exit_code == 8
        assert len(seen) == 5  # flag beats environment


# --------------------------------------------------------------------- TLS


def test_tls_verified_with_ca_bundle_or_requests_ca_bundle(
    cert: tuple[Path, Path], config_file: Path
) -> None:
    crt = str(cert[0])
    with fake_api(OK, tls=server_tls(cert)) as (url, _):
        untrusted = run("get", "m-1", "--retries", "0", env=env_for(url))
        assert untrusted.exit_code == 8
        assert "TLS error" in untrusted.stderr and "ca_bundle" in untrusted.stderr

        via_env = run(
            "get", "m-1", "--field", "id", env={**env_for(url), "REQUESTS_CA_BUNDLE": crt}
        )
        assert via_env.exit_code == 0, via_env.stderr

        save_profile(config_file, "tls", {"key": "k", "passphrase": "p", "secret": "s",
                                          "api_url": url, "ca_bundle": crt})  # fmt: skip
        via_profile = run("get", "m-1", "--field", "id")
        assert via_profile.exit_code == 0, via_profile.stderr


def test_missing_ca_bundle_is_exit_2(config_file: Path) -> None:
    save_profile(config_file, "tls", {"key": "k", "passphrase": "p", "secret": "s",
                                      "ca_bundle": "/nonexistent/ca.pem"})  # fmt: skip
    result = run("get", "m-1")
    assert result.exit_code == 2
    assert "CA bundle /nonexistent/ca.pem (from ca_bundle) does not exist" in result.stderr


# --------------------------------------------------------------------- sharing one client


def test_one_client_shared_by_threads(sandbox: Sandbox) -> None:
    """Batch sending shares a client between workers: one pool, no crossed answers."""
    ids = []
    for i in range(4):
        status, doc = sandbox.request(
            "POST", "/messages",
            {"message": {"type": "sms", "to": f"+47900000{i:02d}", "project": "demo",
                         "text_body": f"n{i}"}},
        )  # fmt: skip
        assert status == 200
        ids.append(doc["data"]["id"])
    settings = Settings(key=sandbox.key, passphrase=sandbox.passphrase, secret=sandbox.secret,
                        api_url=sandbox.url)  # fmt: skip
    errors: list[BaseException] = []

    def worker(client: Client, n: int) -> Callable[[], None]:
        def go() -> None:
            try:
                for _ in range(10):
                    msg = client.get_message(ids[n % 4]).data
                    assert msg["text_body"] == f"n{n % 4}"
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        return go

    with Client(settings, pool_size=8) as client:
        threads = [threading.Thread(target=worker(client, n)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []


def test_send_wait_prints_the_id_even_when_polling_fails() -> None:
    """The message exists once the POST succeeded: a script must still learn its id."""
    boom = (500, {}, {"error": {"message": "database on fire"}})
    with fake_api(OK, boom) as (url, seen):
        result = run(*SEND_ARGS, "--wait", "-q", env=env_for(url))
    assert result.exit_code == 7
    assert result.stdout == "m-1\n"
    assert "database on fire" in result.stderr
    assert [r["method"] for r in seen] == ["POST", "GET"]


def test_get_wait_shows_the_last_known_state_when_polling_fails() -> None:
    boom = (503, {}, {"error": {"message": "maintenance"}})
    with fake_api(OK, boom) as (url, seen):
        result = run("get", "m-1", "--wait", "--retries", "0", "--field", "status",
                     env=env_for(url))  # fmt: skip
    assert result.exit_code == 7
    assert result.stdout == "received\n"
    assert "maintenance" in result.stderr
    assert len(seen) == 2


def test_an_answer_that_is_a_web_page_points_at_the_api_url() -> None:
    """Newcomer trial: the sandbox's inbox URL (no /v1) as the API URL gave a bare
    "rejected: Forbidden (HTTP 403)"; an HTML answer is not the API's, and the line says
    to check the URL."""
    with api_server("html") as (url, _):
        base = url.rsplit("/v1", 1)[0]
        res = run("--api-url", base, "get", "--limit", "1", env=CREDS)
    assert res.exit_code == 5, res.stderr
    assert "Forbidden (HTTP 403)" in res.stderr
    assert (
        f"the answer is not the API's JSON (text/html; charset=utf-8): check the API URL "
        f"{base} (the API's base URL ends in /v1)"
    ) in res.stderr


def test_the_sandbox_tells_an_api_client_at_its_inbox_url_where_the_api_is(sandbox) -> None:
    base = sandbox.url.rsplit("/v1", 1)[0]
    for args in (("get", "--limit", "1"), ("send", "--to", "a@example.com", "--project",
                                            "demo", "--text-body", "x")):  # fmt: skip
        res = run("--api-url", base, *args, env=sandbox.env())
        assert res.exit_code == 4, res.stderr
        assert "the API is under /v1 (/v1/messages): the API URL ends in /v1" in res.stderr


@pytest.mark.parametrize(
    ("link", "before"),
    [
        ('</v1/messages?limit=30&before=abc-1>; rel="next"', "abc-1"),
        ('<https://elsewhere.example/steal?before=abc-1>; rel="next"', "abc-1"),  # only the id
        ('</v1/messages?before=abc-1>; rel="prev"', None),
        ('</v1/messages?limit=30>; rel="next"', None),
        ('</v1/messages?before=a&before=b>; rel="next"', None),
        ('</v1/messages?before=%1b%5b2J>; rel="next"', None),  # a control character
        ("</v1/messages?before=" + "x" * 201 + '>; rel="next"', None),
        ('</v1/messages?before=a>; rel="prev", </v1/messages?before=b>; rel="next"', "b"),
        ("</v1/messages?before=c>; rel=next", "c"),
        ('</v1/messages?before=d>; title="x"; REL="last next"', "d"),
        ('</v1/messages?before=e>; rel="nextpage"', None),
        ("garbage;;;<", None),
        ("", None),
    ],
)
def test_the_next_page_of_a_list_comes_from_its_link_header(link: str, before: str | None) -> None:
    from outkit_cli.client import _next_before

    assert _next_before({"Link": link}) == before
