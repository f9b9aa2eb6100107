"""The signing core against the API reference's worked example and against openssl."""

from __future__ import annotations

import base64
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from outkit_cli import signing

EXAMPLE_BODY = '{"message":{"type":"email","to":"some.email@example.com"}}'
EXAMPLE_SIGNATURE = "WcgNBkmlED60m1K4lM4xUn6eB65k8NIKg2ydaSjbCx0="


def openssl_signature(secret: bytes, data: bytes) -> str:
    """HMAC-SHA256 computed by openssl, not Python; the key as hex so any byte (NUL too) fits."""
    proc = subprocess.run(
        f"openssl dgst -sha256 -mac HMAC -macopt hexkey:{secret.hex()} -binary | base64 -w0",
        shell=True,
        input=data,
        capture_output=True,
        check=True,
    )
    return proc.stdout.decode("ascii").strip()


def test_worked_example_from_the_api_reference() -> None:
    assert (
        signing.sign("test-secret", 1496837645, "POST", "/v1/messages", EXAMPLE_BODY)
        == EXAMPLE_SIGNATURE
    )


def test_presignature_is_the_four_parts_concatenated() -> None:
    presig = signing.presignature("1496837645", "post", "/v1/messages?a=1", EXAMPLE_BODY)
    assert presig == b"1496837645POST/v1/messages?a=1" + EXAMPLE_BODY.encode()


def test_worked_example_agrees_with_openssl() -> None:
    presig = signing.presignature(1496837645, "POST", "/v1/messages", EXAMPLE_BODY)
    assert openssl_signature(b"test-secret", presig) == EXAMPLE_SIGNATURE


def test_text_body_is_encoded_once_as_utf8() -> None:
    body = '{"name":"Zoë 🚀"}'
    assert signing.sign("s", 1, "POST", "/v1/messages", body) == signing.sign(
        "s", 1, "POST", "/v1/messages", body.encode("utf-8")
    )
    assert signing.presignature(1, "POST", "/p", body).endswith(body.encode("utf-8"))


def test_get_has_an_empty_body() -> None:
    assert signing.presignature(5, "GET", "/v1/messages/1") == b"5GET/v1/messages/1"


@pytest.mark.parametrize(
    ("given_path", "target"),
    [
        ("https://api.outkit.io/v1/messages?x=1&y=%20", "/v1/messages?x=1&y=%20"),
        ("http://127.0.0.1:8080/v1/messages", "/v1/messages"),
        ("http://127.0.0.1:8080", "/"),
        ("https://h/v1/messages?a=b#fragment", "/v1/messages?a=b"),
        ("/v1/messages?a=b", "/v1/messages?a=b"),
        # not an http(s) URL with a host: signed exactly as given
        ("/v1/odd:path?x=y:z", "/v1/odd:path?x=y:z"),
        ("mailto:someone", "mailto:someone"),
    ],
)
def test_request_target(given_path: str, target: str) -> None:
    assert signing.request_target(given_path) == target


def test_full_url_signs_like_its_path() -> None:
    url = "http://127.0.0.1:9/v1/messages?a=1"
    assert signing.sign("s", 1, "GET", url) == signing.sign("s", 1, "GET", "/v1/messages?a=1")


def test_verify_accepts_the_exact_timestamp_text_and_rejects_changes() -> None:
    sig = signing.sign("s", "1496837645.123", "POST", "/v1/messages", b"{}")
    assert signing.verify("s", "1496837645.123", "POST", "/v1/messages", b"{}", sig)
    # the same instant written differently is a different pre-signature
    assert not signing.verify("s", "1496837645.1230", "POST", "/v1/messages", b"{}", sig)
    assert not signing.verify("s", "1496837645.123", "POST", "/v1/messages", b"{} ", sig)
    assert not signing.verify("other", "1496837645.123", "POST", "/v1/messages", b"{}", sig)
    assert not signing.verify("s", "1496837645.123", "POST", "/v1/messages", b"{}", "ümlaut")


def test_signed_headers_never_carry_the_secret() -> None:
    headers = signing.auth_headers(
        key="k",
        passphrase="p",
        secret="top-secret",
        method="POST",
        path="/v1/messages",
        body=EXAMPLE_BODY,
        timestamp=1496837645,
    )
    assert headers == {
        "Outkit-Access-Key": "k",
        "Outkit-Access-Passphrase": "p",
        "Outkit-Access-Timestamp": "1496837645",
        "Outkit-Access-Signature": signing.sign(
            "top-secret", 1496837645, "POST", "/v1/messages", EXAMPLE_BODY
        ),
    }
    assert "top-secret" not in headers.values()


def test_unsigned_headers_send_the_secret_and_no_signature() -> None:
    headers = signing.auth_headers(
        key="k", passphrase="p", secret="s", method="GET", path="/v1/messages", signed=False
    )
    assert headers == {
        "Outkit-Access-Key": "k",
        "Outkit-Access-Passphrase": "p",
        "Outkit-Access-Secret": "s",
    }


def test_headers_get_a_current_timestamp_by_default() -> None:
    before = signing.now()
    headers = signing.auth_headers(
        key="k", passphrase="p", secret="s", method="GET", path="/v1/messages"
    )
    assert before <= int(headers["Outkit-Access-Timestamp"]) <= signing.now()


@settings(max_examples=50, deadline=None)
@given(
    body=st.text(max_size=200),
    query=st.text(max_size=40),
    secret=st.one_of(st.text(min_size=1, max_size=40), st.binary(min_size=1, max_size=64)),
    timestamp=st.integers(min_value=0, max_value=2**34),
    method=st.sampled_from(["GET", "POST", "put", "Delete"]),
)
def test_signature_matches_openssl_for_arbitrary_input(
    body: str, query: str, secret: str | bytes, timestamp: int, method: str
) -> None:
    # the path keeps the /v1 prefix real clients sign; the query is any Unicode text
    path = "/v1/messages" + (f"?{query}" if query else "")
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    # the pre-signature built independently: bytes concatenated by hand
    expected_presig = (
        str(timestamp).encode() + method.upper().encode() + path.encode() + body.encode("utf-8")
    )
    assert signing.presignature(timestamp, method, path, body) == expected_presig
    assert signing.sign(secret, timestamp, method, path, body) == openssl_signature(
        key, expected_presig
    )


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=300), secret=st.text(min_size=1, max_size=40))
def test_signature_is_base64_of_a_sha256_mac_and_verifies(body: bytes, secret: str) -> None:
    sig = signing.sign(secret, 7, "POST", "/v1/messages", body)
    assert len(base64.b64decode(sig, validate=True)) == 32
    assert signing.verify(secret, "7", "POST", "/v1/messages", body, sig)
    assert not signing.verify(secret, "7", "POST", "/v1/messages", body + b"x", sig)
