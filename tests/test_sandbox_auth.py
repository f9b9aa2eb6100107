"""Authentication against the sandbox: each failed check gets its own 401 message."""

from __future__ import annotations

import time

import pytest

from outkit_cli import signing
from tests.sandbox_fixture import Sandbox
from tests.test_sandbox_api import WELCOME, call, error


def test_signed_request_with_integer_and_decimal_timestamps(sandbox: Sandbox) -> None:
    for ts in (str(int(time.time())), f"{time.time():.3f}"):
        status, _, doc = call(sandbox, "POST", "/messages", {"message": WELCOME}, timestamp=ts)
        assert status == 200, doc


def test_unsigned_key_sends_its_secret(sandbox: Sandbox) -> None:
    status, _, doc = call(sandbox, "GET", "/messages?limit=1", auth="unsigned")
    assert status == 200 and isinstance(doc["data"], list)


def test_signature_covers_the_query_string(sandbox: Sandbox) -> None:
    ts = str(int(time.time()))
    sig = signing.sign(sandbox.secret, ts, "GET", "/v1/messages?limit=1")
    headers = {signing.TIMESTAMP_HEADER: ts, signing.SIGNATURE_HEADER: sig}
    status, _, doc = call(sandbox, "GET", "/messages?limit=2", headers=headers)
    assert status == 401 and error(doc)[1].startswith("bad signature")
    status, _, _ = call(sandbox, "GET", "/messages?limit=1", headers=headers)
    assert status == 200


def _creds(sb: Sandbox) -> dict[str, str]:
    return {signing.KEY_HEADER: sb.key, signing.PASSPHRASE_HEADER: sb.passphrase}


@pytest.mark.parametrize(
    ("headers", "needle"),
    [
        (lambda sb: {}, "missing header Outkit-Access-Key"),
        (lambda sb: {signing.KEY_HEADER: "sbx_nope"}, "unknown access key"),
        (lambda sb: {signing.KEY_HEADER: sb.key}, "missing header Outkit-Access-Passphrase"),
        (lambda sb: {**_creds(sb), signing.PASSPHRASE_HEADER: "wrong"}, "wrong passphrase"),
        (lambda sb: _creds(sb), "missing header Outkit-Access-Timestamp"),
        (lambda sb: {**_creds(sb), signing.TIMESTAMP_HEADER: str(int(time.time()))},
         "missing header Outkit-Access-Signature"),
        (lambda sb: {**_creds(sb), signing.TIMESTAMP_HEADER: "yesterday",
                     signing.SIGNATURE_HEADER: "x"}, "malformed Outkit-Access-Timestamp"),
        (lambda sb: {**_creds(sb), signing.TIMESTAMP_HEADER: "1496837645",
                     signing.SIGNATURE_HEADER: signing.sign(sb.secret, "1496837645", "GET",
                                                            "/v1/messages")},
         "stale timestamp: Outkit-Access-Timestamp is 1496837645, server time is"),
        (lambda sb: {**_creds(sb), signing.TIMESTAMP_HEADER: str(int(time.time())),
                     signing.SIGNATURE_HEADER: "AAAA"}, "bad signature"),
        (lambda sb: {**_creds(sb), signing.SECRET_HEADER: sb.secret},
         "never Outkit-Access-Secret"),
        (lambda sb: {signing.KEY_HEADER: sb.unsigned_key,
                     signing.PASSPHRASE_HEADER: sb.unsigned_passphrase},
         "missing header Outkit-Access-Secret"),
        (lambda sb: {signing.KEY_HEADER: sb.unsigned_key,
                     signing.PASSPHRASE_HEADER: sb.unsigned_passphrase,
                     signing.SECRET_HEADER: sb.secret}, "wrong secret"),
    ],
)  # fmt: skip
def test_each_failed_check_says_which(sandbox: Sandbox, headers: object, needle: str) -> None:
    hdrs = headers(sandbox)  # type: ignore[operator]
    status, _, doc = call(sandbox, "GET", "/messages", auth="none", headers=hdrs)
    code, message = error(doc)
    assert (status, code) == (401, "unauthorized")
    assert needle in message
    for secret in (sandbox.secret, sandbox.passphrase, sandbox.unsigned_secret):
        assert secret not in message


def test_stale_timestamp_reports_server_time(sandbox: Sandbox) -> None:
    ts = str(int(time.time()) + 301)
    status, _, doc = call(sandbox, "GET", "/messages", timestamp=ts)
    server_time = int(error(doc)[1].split("server time is ")[1].split()[0])
    assert status == 401 and abs(server_time - time.time()) < 5
    ok, _, _ = call(sandbox, "GET", "/messages", timestamp=str(int(time.time()) + 250))
    assert ok == 200


def test_body_is_verified_as_raw_bytes(sandbox: Sandbox) -> None:
    # same JSON, different bytes: the signature is over the bytes sent, not a re-encoding
    body = (
        b'{"message":  {"type":"email","to":"a@example.com","project":"demo","template":"welcome"}}'
    )
    ts = str(int(time.time()))
    sig = signing.sign(sandbox.secret, ts, "POST", "/v1/messages", body.replace(b"  ", b" "))
    headers = {signing.TIMESTAMP_HEADER: ts, signing.SIGNATURE_HEADER: sig}
    status, _, doc = call(sandbox, "POST", "/messages", body, headers=headers)
    assert status == 401 and "bad signature" in error(doc)[1]
    status, _, doc = call(sandbox, "POST", "/messages", body)
    assert status == 200


def test_auth_failure_stores_nothing(sandbox: Sandbox) -> None:
    before = len(sandbox.messages())
    call(sandbox, "POST", "/messages", {"message": WELCOME}, timestamp="1496837645")
    assert len(sandbox.messages()) == before
