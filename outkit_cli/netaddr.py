"""Host names and addresses: the one rule for "is this host loopback" (stdlib only).

Used by the client (plain http:// is allowed only to loopback; loopback is never sent
through a proxy) and the sandbox (it binds to loopback unless told otherwise).
"""

from __future__ import annotations

import ipaddress
import re
import socket

# inet_aton forms (RFC 3986 leaves them to the resolver; glibc accepts '127.1', '0x7f.1'):
# only digits, hex digits, 'x' and dots, so that inet_aton's tolerance of trailing text
# ('127.0.0.1 junk') never applies
_INET_ATON_FORM = re.compile(r"^[0-9a-fA-FxX.]+$")


def parse_ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """``host`` as an IP address, or None for a name.

    Accepts IPv6 in brackets (``[::1]``) and the short IPv4 forms a resolver accepts
    (``127.1`` is 127.0.0.1, as in curl and getaddrinfo). A zone id (``fe80::1%eth0``) is
    dropped. An IPv4-mapped IPv6 address (``::ffff:127.0.0.1``) is returned as IPv4.
    """
    text = host.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    text = text.split("%", 1)[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        if not text or not _INET_ATON_FORM.match(text) or not any(c.isdigit() for c in text):
            return None
        try:
            ip = ipaddress.IPv4Address(socket.inet_aton(text))
        except OSError:
            return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` names this machine's loopback interface.

    True for ``localhost`` (any case, with or without a trailing dot: RFC 6761 section
    6.3 reserves it for loopback), 127.0.0.0/8 in any form a resolver accepts (``127.1``),
    and ``::1`` with or without brackets. False for ``0.0.0.0``, other names and None.
    """
    if not host:
        return False
    if host.strip().rstrip(".").lower() == "localhost":
        return True
    ip = parse_ip(host)
    return ip is not None and ip.is_loopback


def is_wildcard(host: str | None) -> bool:
    """Whether ``host`` as a bind address means every interface: "" (empty), ``0.0.0.0``,
    ``::`` (with or without brackets) or another spelling of them (``0``). Never raises."""
    if host is None:
        return False
    if not host.strip():
        return True
    ip = parse_ip(host)
    return ip is not None and ip.is_unspecified
