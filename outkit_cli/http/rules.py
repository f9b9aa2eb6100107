"""The one rule for how every command reaches the API: proxy, CA certificates, TLS.

`route_for(url, ca_bundle)` decides, from the URL, the profile and the environment, which
proxy (if any) a request goes through and which CA certificates verify the server. Every
command gets its connections from `outkit_cli.http.transport`, which asks this module and
nothing else. Stdlib only, and `ssl` is loaded only when a TLS context is built.

The rules (documented in docs/network.md):

- Proxy: ``HTTPS_PROXY`` for https URLs, ``HTTP_PROXY`` for http URLs, else ``ALL_PROXY``;
  each in lower or upper case (lower case wins, as in curl); an empty value is unset.
  ``NO_PROXY`` (either case) lists hosts that go direct: ``*`` (everything), names (which
  also match their subdomains: ``example.com`` matches ``api.example.com``; a leading
  ``.`` or ``*.`` is the same), IP addresses and CIDR ranges (``10.0.0.0/8``), each
  optionally with ``:port``. Loopback hosts never go through a proxy.
- CA: the profile's ``ca_bundle``, then ``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``,
  ``SSL_CERT_FILE``, ``SSL_CERT_DIR`` (the first set wins; a file or a directory of
  hashed certificates), else the certifi bundle.
- TLS: certificates and host names verified, TLS 1.2 at least.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from outkit_cli.errors import UsageError
from outkit_cli.netaddr import is_loopback, parse_ip

_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$")  # RFC 1123 host names
CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR")
PROXY_SCHEMES = ("http", "https")


@dataclass(frozen=True)
class Proxy:
    """A proxy to send requests through: its URL and the variable that named it."""

    url: str
    source: str  # e.g. "HTTPS_PROXY"

    @property
    def shown(self) -> str:
        """The proxy URL without its credentials (for messages and for urllib3)."""
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme.lower()}://{host}{port}"

    @property
    def credentials(self) -> tuple[str, str] | None:
        """(user, password) from the proxy URL, for Proxy-Authorization (RFC 9110 11.7.1)."""
        parts = urlsplit(self.url)
        if parts.username is None:
            return None
        return unquote(parts.username), unquote(parts.password or "")


@dataclass(frozen=True)
class CaSource:
    """Where the CA certificates come from: a file or a directory, and who named it."""

    path: str
    is_dir: bool
    source: str  # "ca_bundle" (profile) or an environment variable's name


@dataclass(frozen=True)
class Route:
    """How requests to one API URL travel: through ``proxy`` (None: direct), with ``ca``
    (None: the certifi bundle) verifying the server (and an https proxy)."""

    proxy: Proxy | None
    ca: CaSource | None


def route_for(url: str, ca_bundle: str | None, env: Mapping[str, str] | None = None) -> Route:
    """The route for requests to ``url`` (an absolute http(s) URL).

    ``ca_bundle`` is the profile's setting (or None); ``env`` defaults to os.environ.
    Raises UsageError for a proxy URL that is not http(s)://host[:port] and for a CA file or
    directory that does not exist.
    """
    env = os.environ if env is None else env
    parts = urlsplit(url)
    proxy = proxy_for(parts.scheme.lower(), parts.hostname or "", parts.port, env)
    # certificates matter only for https (to the API or to the proxy): a loopback
    # http:// URL does not need a CA bundle that exists
    tls = parts.scheme.lower() == "https" or (
        proxy is not None and proxy.shown.startswith("https:")
    )
    return Route(proxy, ca_source(ca_bundle, env) if tls else None)


def _env(env: Mapping[str, str], name: str) -> tuple[str, str] | None:
    """(value, the name it was found under) of ``name`` in lower, then upper case."""
    for key in (name.lower(), name.upper()):
        value = env.get(key, "").strip()
        if value:
            return value, key
    return None


def proxy_for(
    scheme: str, host: str, port: int | None, env: Mapping[str, str] | None = None
) -> Proxy | None:
    """The proxy for a request to ``scheme://host:port``, or None to go direct."""
    env = os.environ if env is None else env
    if is_loopback(host):
        return None
    found = _env(env, f"{scheme}_proxy") or _env(env, "all_proxy")
    if found is None:
        return None
    no_proxy = _env(env, "no_proxy")
    if no_proxy is not None and bypasses(host, port or (443 if scheme == "https" else 80),
                                         no_proxy[0]):  # fmt: skip
        return None
    value, source = found
    return Proxy(check_proxy_url(value, source), source)


def check_proxy_url(value: str, source: str) -> str:
    """``value`` as a proxy URL; a bare ``host:port`` means http:// as in curl."""
    url = value if "://" in value else f"http://{value}"
    scheme = url.split("://", 1)[0].lower()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
        host = parts.hostname or ""
        ok = scheme in PROXY_SCHEMES and bool(_HOST.match(host) or parse_ip(host))
    except ValueError:  # a bad port, an unbalanced IPv6 bracket
        ok = False
    if not ok:
        # the value is not echoed: it may hold credentials or terminal controls
        what = (
            f"a {scheme}:// proxy"
            if scheme.isalnum() and scheme not in PROXY_SCHEMES
            else ("the proxy URL")
        )
        raise UsageError(
            f"{what} (from {source}) is not supported: use http://host:port or https://host:port"
        )
    return url


def bypasses(host: str, port: int, no_proxy: str) -> bool:
    """Whether ``NO_PROXY``'s value lets ``host:port`` go direct (rules in the module doc)."""
    host = host.strip("[]").rstrip(".").lower()
    ip = parse_ip(host)
    for raw in no_proxy.replace(" ", ",").split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        entry, entry_port = _split_port(entry)
        if entry_port is not None and entry_port != port:
            continue
        if "/" in entry:
            if ip is not None and _in_network(ip, entry):
                return True
            continue
        entry_ip = parse_ip(entry)
        if entry_ip is not None:
            if ip is not None and ip == entry_ip:
                return True
            continue
        name = entry.removeprefix("*").lstrip(".").rstrip(".")
        if name and ip is None and (host == name or host.endswith("." + name)):
            return True
    return False


def _split_port(entry: str) -> tuple[str, int | None]:
    if entry.startswith("["):  # [v6]:port or [v6]
        addr, _, rest = entry[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
        return addr, int(port) if port.isdigit() else None
    if entry.count(":") == 1:  # name:port or v4:port (a bare v6 has several colons)
        name, _, port = entry.partition(":")
        return name, int(port) if port.isdigit() else None
    return entry, None


def _in_network(ip: Any, cidr: str) -> bool:
    try:
        net = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False
    return ip.version == net.version and ip in net


def ca_source(ca_bundle: str | None, env: Mapping[str, str] | None = None) -> CaSource | None:
    """The CA certificates to verify servers with, or None for the certifi bundle."""
    env = os.environ if env is None else env
    path, source = ca_bundle, "ca_bundle"
    if not path:
        for var in CA_VARIABLES:
            if env.get(var):
                path, source = env[var], var
                break
    if not path:
        return None
    expanded = os.path.expanduser(path)
    if not os.path.exists(expanded):
        raise UsageError(f"CA bundle {path} (from {source}) does not exist")
    return CaSource(expanded, os.path.isdir(expanded), source)


_contexts: dict[CaSource | None, Any] = {}


def tls_context(ca: CaSource | None) -> Any:
    """An ``ssl.SSLContext`` verifying certificates and host names with ``ca``, TLS >= 1.2.

    Built once per CA source (loading a bundle costs milliseconds). Raises UsageError when
    the CA file or directory cannot be read as PEM certificates.
    """
    if ca in _contexts:
        return _contexts[ca]
    import ssl

    # PROTOCOL_TLS_CLIENT verifies certificates and host names; unlike
    # create_default_context it loads no system store: only the CAs the rule names count
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        if ca is None:
            import certifi

            ctx.load_verify_locations(cafile=certifi.where())
        elif ca.is_dir:
            ctx.load_verify_locations(capath=ca.path)
        else:
            ctx.load_verify_locations(cafile=ca.path)
    except (OSError, ssl.SSLError) as exc:
        where = f"{ca.path} (from {ca.source})" if ca else "the certifi bundle"
        why = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or exc
        raise UsageError(f"cannot read CA certificates from {where}: {why}") from None
    _contexts[ca] = ctx
    return ctx
