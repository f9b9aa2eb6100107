"""How a signed request reaches the API: two interchangeable transports.

`RequestsTransport` (the default) is one `requests.Session`: proxies, TLS and keep-alive
as users of `requests` expect. `StdlibTransport` keeps one lean keep-alive connection
(`http11.py`) per thread; batch sending uses it because it costs a fraction of the CPU
per request, and a batch is CPU-bound on a small machine. Both report failures the same way, so the
retry rules in `client.py` do not care which one sent the request:

- `Unsent`: nothing reached the server (connection refused, DNS, connect timeout, the
  request could not be written): always safe to retry;
- `MaybeSent`: the request went out and the answer was lost; `ReadTimedOut` is the case
  of no answer in time;
- `NetworkError` for failures retrying cannot fix (TLS certificate problems).
"""

from __future__ import annotations

import os
import select
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from outkit_cli.errors import NetworkError, UsageError
from outkit_cli.terminal import one_line


class Unsent(Exception):
    """The connection failed before the request left: always safe to retry."""


class MaybeSent(Exception):
    """The request may have reached the server; the answer was lost."""


class ReadTimedOut(MaybeSent):
    """The request went out and no answer came within the read timeout."""


@dataclass
class Response:
    """The parts of an answer the client reads (the same names as `requests.Response`)."""

    status_code: int
    reason: str
    headers: Mapping[str, str]  # case-insensitive lookups
    content: bytes


class Transport(Protocol):
    def send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        connect_timeout: float,
        read_timeout: float,
    ) -> Any: ...

    def close(self) -> None: ...


def tls_hint(host: str, reason: str) -> NetworkError:
    return NetworkError(
        f"TLS error talking to {host}: {reason} "
        "(set ca_bundle in the profile or REQUESTS_CA_BUNDLE for a private CA)"
    )


class RequestsTransport:
    """One `requests.Session` (one keep-alive pool), shareable between threads."""

    def __init__(self, base_url: str, verify: bool | str, pool_size: int) -> None:
        import requests
        from requests.adapters import HTTPAdapter

        self._requests = requests
        self.session = requests.Session()
        # Proxy settings from the environment (HTTPS_PROXY, NO_PROXY, ...) are read once
        # here: requests re-reads the whole environment on every send otherwise. trust_env
        # off also skips ~/.netrc lookups, which never apply: every request carries its own
        # authentication headers.
        self.session.trust_env = False
        self.proxies = environment_proxies(base_url)
        self.verify = verify
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max(1, pool_size))
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.host = urlsplit(base_url).netloc

    def send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        connect_timeout: float,
        read_timeout: float,
    ) -> Any:
        from outkit_cli.signing import request_target

        exc_mod = self._requests.exceptions
        prep = self.session.prepare_request(
            self._requests.Request(method, url, headers=dict(headers), data=body or None)
        )
        # requests may re-quote a URL; the signature must cover the path actually sent
        if prep.path_url != request_target(url):
            raise UsageError(f"cannot sign URL {url!r}: it is not in canonical form")
        host = self.host
        try:
            return self.session.send(
                prep,
                proxies=self.proxies,
                timeout=(connect_timeout, read_timeout),
                verify=self.verify,
                allow_redirects=False,
            )
        except exc_mod.ConnectTimeout:
            raise Unsent(
                f"cannot connect to {host}: timed out after {connect_timeout:g} s"
            ) from None
        except exc_mod.SSLError as exc:
            raise tls_hint(host, reason(exc)) from None
        except exc_mod.ReadTimeout:
            raise ReadTimedOut(f"no answer from {host} within {read_timeout:g} s") from None
        except exc_mod.ConnectionError as exc:
            if _nothing_sent(exc):
                raise Unsent(f"cannot connect to {host}: {reason(exc)}") from None
            raise MaybeSent(f"connection to {host} lost: {reason(exc)}") from None
        except (exc_mod.ChunkedEncodingError, exc_mod.ContentDecodingError) as exc:
            raise MaybeSent(f"broken answer from {host}: {reason(exc)}") from None
        except exc_mod.InvalidURL as exc:
            raise UsageError(f"invalid API URL {url!r}: {exc}") from None
        except exc_mod.RequestException as exc:
            raise NetworkError(f"request to {host} failed: {reason(exc)}") from None

    def close(self) -> None:
        self.session.close()


class StdlibTransport:
    """Keep-alive connections (`http11.Connection`), one per thread, to one host, no proxy."""

    def __init__(self, base_url: str, verify: bool | str) -> None:
        parts = urlsplit(base_url)
        self.https = parts.scheme == "https"
        self.hostname = parts.hostname or ""
        self.port = parts.port or (443 if self.https else 80)
        self.host = parts.netloc
        self._ssl: Any = None
        if self.https:
            import ssl

            self._ssl = ssl.create_default_context(
                cafile=verify if isinstance(verify, str) else None
            )
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[Any] = []

    def _connection(self, connect_timeout: float) -> Any:
        from outkit_cli.http11 import Connection

        conn = getattr(self._local, "conn", None)
        if conn is not None and conn.sock is not None and _closed_by_peer(conn.sock):
            conn.close()  # the server ended the idle keep-alive connection
        if conn is None:
            conn = Connection(self.hostname, self.port, self.host, self._ssl)
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        if conn.sock is None:
            try:
                conn.connect(connect_timeout)
            except OSError as exc:
                if _is_tls_error(exc):
                    raise tls_hint(self.host, getattr(exc, "reason", None) or str(exc)) from None
                if isinstance(exc, TimeoutError):
                    raise Unsent(
                        f"cannot connect to {self.host}: timed out after {connect_timeout:g} s"
                    ) from None
                raise Unsent(f"cannot connect to {self.host}: {reason(exc)}") from None
        return conn

    def send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        connect_timeout: float,
        read_timeout: float,
    ) -> Response:
        from outkit_cli.http11 import ProtocolError
        from outkit_cli.signing import request_target

        conn = self._connection(connect_timeout)
        conn.sock.settimeout(read_timeout)
        try:
            conn.send(method, request_target(url), headers, body)
        except (ValueError, UnicodeEncodeError) as exc:
            raise UsageError(f"cannot send this request: {exc}") from None
        except OSError as exc:
            # the request was not written whole, so the server cannot have acted on it
            conn.close()
            raise Unsent(f"cannot send to {self.host}: {reason(exc)}") from None
        try:
            status, why, answer_headers, content = conn.read_response(method)
        except TimeoutError:
            conn.close()
            raise ReadTimedOut(f"no answer from {self.host} within {read_timeout:g} s") from None
        except (ProtocolError, OSError) as exc:
            conn.close()
            raise MaybeSent(f"connection to {self.host} lost: {reason(exc)}") from None
        return Response(status, why, answer_headers, content)

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()


def _is_tls_error(exc: BaseException) -> bool:
    # ssl is loaded only for https URLs; a plain-http batch need not import it to check
    ssl = sys.modules.get("ssl")
    return ssl is not None and isinstance(exc, ssl.SSLError)


def _closed_by_peer(sock: Any) -> bool:
    """An idle keep-alive socket that is readable has been closed (or sent junk)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def environment_proxies(url: str) -> dict[str, str]:
    """The proxies the environment sets for ``url`` (HTTPS_PROXY, NO_PROXY, ...)."""
    import urllib.request

    if urllib.request.proxy_bypass(urlsplit(url).hostname or ""):
        return {}
    scheme = urlsplit(url).scheme
    return {k: v for k, v in urllib.request.getproxies().items() if k in (scheme, "all")}


def proxy_configured(url: str) -> bool:
    """Whether any proxy variable could apply to ``url``; cheap (no urllib.request import),
    so a batch can pick the stdlib transport without paying for the full rules."""
    scheme = urlsplit(url).scheme
    wanted = {f"{scheme}_proxy", "all_proxy"}
    return any(k.lower() in wanted and v for k, v in os.environ.items())


def _nothing_sent(exc: Exception) -> bool:
    """True when a ConnectionError happened while connecting (refused, DNS, unreachable)."""
    from urllib3.exceptions import NewConnectionError

    seen: set[int] = set()
    todo: list[Any] = [exc]
    while todo:
        cur = todo.pop()
        if cur is None or id(cur) in seen:
            continue
        seen.add(id(cur))
        if isinstance(cur, NewConnectionError):
            return True
        todo.extend([getattr(cur, "reason", None), cur.__cause__, cur.__context__])
        todo.extend(a for a in getattr(cur, "args", ()) if isinstance(a, BaseException))
    return False


def reason(exc: BaseException) -> str:
    """The innermost readable cause, e.g. 'Connection refused'."""
    cur: Any = exc
    for _ in range(6):
        nxt = getattr(cur, "reason", None)
        if nxt is None and cur.args and isinstance(cur.args[0], BaseException):
            nxt = cur.args[0]
        if not isinstance(nxt, BaseException):
            if isinstance(nxt, str) and nxt:
                return one_line(nxt, 200)
            break
        cur = nxt
    text = str(getattr(cur, "strerror", None) or cur)
    # urllib3 messages carry an object repr before the useful part
    if "]" in text and text.startswith("<"):
        text = text.split(">: ", 1)[-1]
    if "Errno" in text and "]" in text:
        text = text.split("]", 1)[1].strip()
    return one_line(text, 200) or type(cur).__name__
