"""The one proxy / CA / TLS rule (outkit_cli.http.rules) and the loopback rule
(outkit_cli.netaddr), as pure functions; test_transport.py runs them end to end."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from outkit_cli.errors import UsageError
from outkit_cli.http.rules import bypasses, ca_source, proxy_for, route_for, tls_context
from outkit_cli.netaddr import is_loopback


@pytest.mark.parametrize(
    "host",
    ["localhost", "LOCALHOST", "localhost.", "127.0.0.1", "127.1", "127.255.0.9", "::1",
     "[::1]", "::ffff:127.0.0.1", "0x7f.1"],
)  # fmt: skip
def test_loopback(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize(
    "host",
    ["", None, "0.0.0.0", "128.0.0.1", "10.0.0.1", "::2", "example.com", "localhost.example.com",
     "127.0.0.1 junk", "my-localhost"],
)  # fmt: skip
def test_not_loopback(host: str | None) -> None:
    assert not is_loopback(host)


@pytest.mark.parametrize(
    ("host", "no_proxy", "direct"),
    [
        ("api.outkit.io", "*", True),
        ("api.outkit.io", "outkit.io", True),
        ("api.outkit.io", ".outkit.io", True),
        ("api.outkit.io", "*.outkit.io", True),
        ("outkit.io", ".outkit.io", True),
        ("api.outkit.io", "API.OUTKIT.IO", True),
        ("api.outkit.io", "kit.io", False),  # a suffix matches at a dot only
        ("notoutkit.io", "outkit.io", False),
        ("api.outkit.io", "other.example, outkit.io", True),
        ("api.outkit.io", "other.example outkit.io", True),
        ("api.outkit.io", "outkit.io:443", True),
        ("api.outkit.io", "outkit.io:8443", False),
        ("10.1.2.3", "10.0.0.0/8", True),
        ("10.1.2.3", "10.1.2.3", True),
        ("10.1.2.3", "10.1.2.4", False),
        ("11.1.2.3", "10.0.0.0/8", False),
        ("2001:db8::5", "2001:db8::/32", True),
        ("[2001:db8::5]", "[2001:db8::5]", True),
        ("api.outkit.io", "10.0.0.0/8", False),
        ("api.outkit.io", "", False),
        ("api.outkit.io", "not a cidr/99", False),
    ],
)
def test_no_proxy(host: str, no_proxy: str, direct: bool) -> None:
    assert bypasses(host, 443, no_proxy) is direct


def test_proxy_variables_lower_case_first_then_all_proxy() -> None:
    env = {"HTTPS_PROXY": "http://upper:1", "https_proxy": "http://lower:1", "ALL_PROXY": "x:1"}
    p = proxy_for("https", "api.outkit.io", None, env)
    assert p is not None and p.url == "http://lower:1" and p.source == "https_proxy"
    p = proxy_for("https", "api.outkit.io", None, {"ALL_PROXY": "proxy.lan:3128"})
    assert p is not None and p.url == "http://proxy.lan:3128" and p.source == "ALL_PROXY"
    assert proxy_for("https", "api.outkit.io", None, {"HTTP_PROXY": "http://p:1"}) is None
    assert proxy_for("https", "api.outkit.io", None, {"https_proxy": "", "HTTPS_PROXY": ""}) is None
    env = {"HTTPS_PROXY": "http://p:1", "no_proxy": "outkit.io"}
    assert proxy_for("https", "api.outkit.io", None, env) is None
    for host in ("127.0.0.1", "127.1", "localhost", "::1"):
        assert proxy_for("http", host, 80, {"HTTP_PROXY": "http://p:1"}) is None


def test_proxy_url_shown_without_credentials() -> None:
    p = proxy_for("https", "api.outkit.io", None, {"HTTPS_PROXY": "http://u:p%40ss@[::1]:3128"})
    assert p is not None
    assert p.shown == "http://[::1]:3128"
    assert p.credentials == ("u", "p@ss")


@pytest.mark.parametrize("value", ["socks5://127.0.0.1:1080", "http://:3128", "http://h:99999"])
def test_unsupported_proxy_urls_are_usage_errors(value: str) -> None:
    with pytest.raises(UsageError, match=r"proxy( URL)? \(from HTTPS_PROXY\) is not supported"):
        proxy_for("https", "api.outkit.io", None, {"HTTPS_PROXY": value})


def test_ca_order(tmp_path: Path) -> None:
    files = {name: tmp_path / name for name in ("profile", "req", "curl", "file")}
    for f in files.values():
        f.write_text("x")
    env = {"REQUESTS_CA_BUNDLE": str(files["req"]), "CURL_CA_BUNDLE": str(files["curl"]),
           "SSL_CERT_FILE": str(files["file"]), "SSL_CERT_DIR": str(tmp_path)}  # fmt: skip
    assert ca_source(str(files["profile"]), env).source == "ca_bundle"  # type: ignore[union-attr]
    order = ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR"]
    for var in order:
        found = ca_source(None, env)
        assert found is not None and found.source == var
        assert found.is_dir is (var == "SSL_CERT_DIR")
        del env[var]
    assert ca_source(None, env) is None


def test_missing_and_unreadable_ca_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"CA bundle /nope.pem \(from SSL_CERT_FILE\) does not"):
        ca_source(None, {"SSL_CERT_FILE": "/nope.pem"})
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    with pytest.raises(UsageError, match=r"cannot read CA certificates from .*junk\.pem"):
        tls_context(ca_source(str(junk), {}))


def test_tls_context_verifies_and_needs_tls_1_2() -> None:
    ctx = tls_context(None)
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert ctx.cert_store_stats()["x509_ca"] > 10  # the certifi bundle


def test_route_needs_no_ca_for_plain_loopback() -> None:
    route = route_for("http://127.0.0.1:8025/v1", None, {"SSL_CERT_FILE": "/nope.pem"})
    assert route.proxy is None and route.ca is None
