"""netaddr.is_loopback: the one loopback rule for the client (plain http) and the sandbox
(the --host warning)."""

from __future__ import annotations

import pytest

from outkit_cli.netaddr import is_loopback, is_wildcard


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1", "127.1", "127.0.0.2", "127.255.255.254", "0x7f.1", "2130706433",
        "localhost", "LOCALHOST", "LocalHost", "::1", "[::1]", "0:0:0:0:0:0:0:1",
        "::ffff:127.0.0.1", "[::ffff:127.0.0.1]",
    ],
)  # fmt: skip
def test_loopback_spellings(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize(
    "host",
    [
        None, "", "0.0.0.0", "::", "[::]", "0", "192.168.1.2", "10.0.0.1", "128.0.0.1",
        "example.com", "evil.localhost", "localhost.example.com",
        "127.0.0.1.example.com", "127.0.0.1 x", "127.1.", "1.2.3.4.5", "::2",
        "::ffff:10.0.0.1", "[::1",
    ],
)  # fmt: skip
def test_not_loopback(host: str | None) -> None:
    assert not is_loopback(host)


@pytest.mark.parametrize("host", ["", "0.0.0.0", "::", "[::]", "0"])
def test_wildcards(host: str) -> None:
    assert is_wildcard(host)


@pytest.mark.parametrize("host", [None, "127.0.0.1", "::1", "localhost", "192.168.1.2"])
def test_not_wildcards(host: str | None) -> None:
    assert not is_wildcard(host)


def test_the_client_takes_every_loopback_spelling_over_plain_http() -> None:
    from outkit_cli.client import check_api_url

    for host in ("127.1", "LOCALHOST", "[::1]"):
        assert check_api_url(f"http://{host}:8025/v1") == f"http://{host}:8025/v1"
