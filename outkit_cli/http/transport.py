"""How a signed request reaches the API: one urllib3 pool per client, for every command.

`Transport` takes its proxy, CA certificates and TLS settings from `rules.route_for` (the
one rule), keeps connections alive between requests (a batch shares one pool between its
workers), never follows redirects, bounds each request as a whole (`deadline.py`) and
cuts off answers over `MAX_ANSWER_BYTES`. Failures come out as three kinds, so the retry
rules in `client.py` know what is safe:

- `Unsent`: nothing reached the server (connection refused, DNS, proxy unreachable,
  connect timeout): always safe to retry;
- `MaybeSent`: the request went out and the answer was lost; `ReadTimedOut` is the case of
  no complete answer in time, `AnswerTooLarge` of an answer cut off at the size limit;
- `NetworkError` (from errors.py) for failures retrying cannot fix (TLS certificates).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from outkit_cli.errors import NetworkError, UsageError
from outkit_cli.http.deadline import WATCHDOG
from outkit_cli.http.rules import Route, route_for, tls_context
from outkit_cli.terminal import one_line

# An Outkit answer is a message or a page of them: kilobytes. Anything this big is not one.
MAX_ANSWER_BYTES = 64 * 1024 * 1024
# Connecting takes a round trip or two: no need to wait the whole --timeout for it.
CONNECT_TIMEOUT = 10.0
_READ_SIZE = 64 * 1024


class Unsent(Exception):
    """The connection failed before the request left: always safe to retry."""


class MaybeSent(Exception):
    """The request may have reached the server; the answer was lost."""


class ReadTimedOut(MaybeSent):
    """The request went out and no complete answer came within the timeout."""


class AnswerTooLarge(MaybeSent):
    """The answer was longer than MAX_ANSWER_BYTES and was cut off."""


@dataclass
class Response:
    """The parts of an answer the client reads."""

    status_code: int
    reason: str
    headers: Mapping[str, str]  # case-insensitive lookups
    content: bytes


def tls_hint(host: str, why: str) -> NetworkError:
    return NetworkError(
        f"TLS error talking to {host}: {why} (for a private CA set ca_bundle in the profile, "
        "or REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE, SSL_CERT_FILE or SSL_CERT_DIR)"
    )


class Transport:
    """One keep-alive pool to one API base URL, shareable between threads."""

    def __init__(
        self,
        base_url: str,
        ca_bundle: str | None,
        pool_size: int = 10,
        *,
        env: Mapping[str, str] | None = None,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
    ) -> None:
        """Raises UsageError when the route cannot be set up (bad proxy URL, unreadable CA)."""
        self.route: Route = route_for(base_url, ca_bundle, env)
        self.host = urlsplit(base_url).netloc
        self.max_answer_bytes = max_answer_bytes
        self._manager = _manager(base_url, self.route, max(1, pool_size))
        self._pool = self._manager.connection_from_url(base_url)
        # a plain-http request through a proxy names the whole URL (RFC 9112 3.2.2)
        self._absolute = self.route.proxy is not None and base_url.startswith("http:")

    def send(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes, *, timeout: float
    ) -> Response:
        """One attempt: the whole answer within ``timeout`` seconds, or an exception."""
        from outkit_cli.signing import request_target

        target = url if self._absolute else request_target(url)
        watch = WATCHDOG.start(timeout)
        resp = None
        try:
            resp = self._urlopen(method, target, headers, body, timeout)
            content = self._read(resp)
        except (Unsent, MaybeSent, NetworkError, UsageError):
            if watch.expired:
                raise self._timed_out(timeout) from None
            raise
        finally:
            WATCHDOG.finish(watch)
            if resp is not None:
                if watch.expired:
                    resp.close()  # its connection was shut down: not for reuse
                resp.release_conn()
        if watch.expired:  # e.g. a read-to-close answer ended by the watchdog's shutdown
            raise self._timed_out(timeout)
        return Response(resp.status, resp.reason or "", resp.headers, content)

    def _timed_out(self, timeout: float) -> ReadTimedOut:
        return ReadTimedOut(f"no complete answer from {self.host} within {timeout:g} s")

    def _urlopen(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes, timeout: float
    ) -> Any:
        import urllib3
        from urllib3 import exceptions as ex

        try:
            return self._pool.urlopen(
                method,
                target,
                body=body or None,
                headers=dict(headers),
                retries=False,  # client.py retries, signing each attempt afresh
                redirect=False,
                assert_same_host=False,
                preload_content=False,
                decode_content=False,
                timeout=urllib3.Timeout(connect=min(timeout, CONNECT_TIMEOUT), read=timeout),
            )
        except ex.ProxyError as exc:
            proxy = self.route.proxy
            shown = f"{proxy.shown} (from {proxy.source})" if proxy else "the proxy"
            raise Unsent(f"cannot connect to proxy {shown}: {reason(exc)}") from None
        except ex.SSLError as exc:
            raise tls_hint(self.host, reason(exc)) from None
        except (ex.NewConnectionError, ex.NameResolutionError) as exc:
            raise Unsent(f"cannot connect to {self.host}: {reason(exc)}") from None
        except ex.ConnectTimeoutError:
            raise Unsent(
                f"cannot connect to {self.host}: timed out after "
                f"{min(timeout, CONNECT_TIMEOUT):g} s"
            ) from None
        except ex.ReadTimeoutError:
            raise self._timed_out(timeout) from None
        except (ex.LocationValueError, ValueError, UnicodeError) as exc:
            raise UsageError(f"cannot send this request: {reason(exc)}") from None
        except (ex.HTTPError, OSError) as exc:
            if _timed_out_inside(exc):
                # the socket's own timeout while sending, a moment before the watchdog's
                raise self._timed_out(timeout) from None
            raise MaybeSent(f"connection to {self.host} lost: {reason(exc)}") from None

    def _read(self, resp: Any) -> bytes:
        from urllib3 import exceptions as ex

        limit = self.max_answer_bytes
        length = resp.headers.get("Content-Length", "")
        if length.strip().isdigit() and int(length) > limit:
            resp.close()
            raise self._too_large()
        parts: list[bytes] = []
        total = 0
        try:
            while True:
                chunk = resp.read(_READ_SIZE)
                if not chunk:
                    break
                total += len(chunk)
                if total > limit:
                    resp.close()
                    raise self._too_large()
                parts.append(chunk)
        except ex.ReadTimeoutError:
            resp.close()
            raise ReadTimedOut(f"the answer from {self.host} stopped coming") from None
        except (ex.HTTPError, OSError) as exc:
            resp.close()
            raise MaybeSent(f"connection to {self.host} lost: {reason(exc)}") from None
        return b"".join(parts)

    def _too_large(self) -> AnswerTooLarge:
        return AnswerTooLarge(
            f"the answer from {self.host} is larger than "
            f"{self.max_answer_bytes // (1024 * 1024)} MiB; cut off"
        )

    def close(self) -> None:
        self._manager.clear()


def _manager(base_url: str, route: Route, pool_size: int) -> Any:
    """A urllib3 PoolManager (or ProxyManager) whose connections obey the deadline watch."""
    import urllib3
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    kwargs: dict[str, Any] = {"num_pools": 1, "maxsize": pool_size, "block": False}
    https = base_url.startswith("https:")
    if https:
        kwargs["ssl_context"] = tls_context(route.ca)
    if route.proxy is not None:
        proxy = route.proxy
        headers = {}
        if proxy.credentials is not None:
            headers = urllib3.make_headers(proxy_basic_auth=":".join(proxy.credentials))
        if proxy.shown.startswith("https:"):
            kwargs["proxy_ssl_context"] = tls_context(route.ca)
        manager: Any = urllib3.ProxyManager(proxy.shown, proxy_headers=headers, **kwargs)
    else:
        manager = urllib3.PoolManager(**kwargs)

    class Pool(HTTPConnectionPool):
        ConnectionCls = _guarded_connection(https=False)

    class TLSPool(HTTPSConnectionPool):
        ConnectionCls = _guarded_connection(https=True)

    manager.pool_classes_by_scheme = {"http": Pool, "https": TLSPool}
    return manager


_connection_classes: dict[bool, Any] = {}


def _guarded_connection(*, https: bool) -> Any:
    """urllib3's connection class, attaching each socket to the current request's watch."""
    if https in _connection_classes:
        return _connection_classes[https]
    from urllib3.connection import HTTPConnection, HTTPSConnection

    base: Any = HTTPSConnection if https else HTTPConnection

    class Guarded(base):
        _guard: Any = None

        def _new_conn(self) -> Any:
            sock = super()._new_conn()
            # a second descriptor for the same TCP connection: the watchdog shuts it down
            # even while TLS wraps (and detaches) the first one
            self._guard = sock.dup()
            WATCHDOG.attach(self._guard)
            return sock

        def request(self, *args: Any, **kwargs: Any) -> Any:
            WATCHDOG.attach(self._guard)
            return super().request(*args, **kwargs)

        def close(self) -> None:
            try:
                super().close()
            finally:
                if self._guard is not None:
                    self._guard.close()
                    self._guard = None

    _connection_classes[https] = Guarded
    return Guarded


def _timed_out_inside(exc: BaseException) -> bool:
    """Whether a socket timeout (TimeoutError) is anywhere in urllib3's wrapping of ``exc``."""
    cur: Any = exc
    seen: set[int] = set()
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, TimeoutError):
            return True
        seen.add(id(cur))
        nxt = getattr(cur, "reason", None)
        if not isinstance(nxt, BaseException):
            nxt = next((a for a in getattr(cur, "args", ()) if isinstance(a, BaseException)), None)
        cur = nxt if isinstance(nxt, BaseException) else cur.__context__
    return False


def reason(exc: BaseException) -> str:
    """The innermost readable cause, e.g. 'Connection refused', without urllib3's wrapping
    (object reprs, ``HTTPSConnectionPool(host=...)``, nested quotes and parentheses)."""
    cur: Any = exc
    seen: set[int] = set()
    while id(cur) not in seen:
        seen.add(id(cur))
        nxt = getattr(cur, "reason", None)
        if not isinstance(nxt, BaseException):
            nxt = next((a for a in getattr(cur, "args", ()) if isinstance(a, BaseException)), None)
        if not isinstance(nxt, BaseException):
            nxt = getattr(cur, "original_error", None)
        if not isinstance(nxt, BaseException):
            break
        cur = nxt
    text = getattr(cur, "strerror", None) or ""
    if not text:
        why = getattr(cur, "reason", None)
        text = why if isinstance(why, str) and why else str(cur)
    # urllib3's NameResolutionError keeps its cause only in the text:
    # "HTTPSConnection(...): Failed to resolve 'h' ([Errno -2] Name or service not known)";
    # the cause alone, without the ')' that closed it
    wrapped = _WRAPPED_ERRNO.search(text)
    if wrapped:
        text = wrapped.group(1)
    # the others carry the connection object before the useful part:
    # "HTTPConnection(host='h', port=1): Failed to establish a new connection: [Errno 111]
    # Connection refused" -> "Connection refused"
    text = _URLLIB3_NOISE.sub("", text)
    return one_line(text, 200) or type(cur).__name__


_WRAPPED_ERRNO = re.compile(r"\(\[Errno [^\]]*\] (.+)\)$")
_URLLIB3_NOISE = re.compile(
    r"^<[^>]*>: |^\w+\(host=[^)]*\): |Failed to establish a new connection: |\[Errno -?\d+\] "
)
