"""Signed requests to the Outkit API: retries, backoff, rate, errors -> exceptions.

Only the standard library is imported at module level: urllib3 is loaded when a `Client`
is created, so modules that merely import names from here stay cheap.

One `Client` holds one transport (`http/transport.py`: a urllib3 pool under the one
proxy/CA/TLS rule of `http/rules.py`), whatever the command. Several threads may share a
client (batch sending): the transport is thread-safe, the `Backoff` object makes a 429
slow down every worker, not just the one that got it, and an optional `RateLimiter`
(`http/ratelimit.py`) paces them all.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

from outkit_cli import __version__, signing
from outkit_cli.diagnostics import debug, is_verbose
from outkit_cli.errors import (
    AuthError,
    MaybeSentError,
    NetworkError,
    NotFoundError,
    OutkitError,
    RateLimitedError,
    RejectedError,
    ServerError,
    UnreachableError,
    UsageError,
)
from outkit_cli.http.transport import (
    AnswerTooLarge,
    MaybeSent,
    ReadTimedOut,
    Transport,
    Unsent,
)
from outkit_cli.netaddr import is_loopback

if TYPE_CHECKING:
    from outkit_cli.http.ratelimit import RateLimiter
    from outkit_cli.multipart import Form

USER_AGENT = f"outkit-cli/{__version__}"
# Statuses worth another attempt of a GET, which changes nothing: 429, and 502/503/504 (a
# proxy in front of the API, or the API busy). A 500 is an error in the API itself, which
# the same request would meet again: not retried.
RETRY_STATUSES = frozenset({429, 502, 503, 504})
# A POST is sent again only when the server certainly did not take it (RFC 9110 9.2.2: no
# automatic retry of a non-idempotent request that may have been applied): a 429 (the API
# refused it; API reference, status code summary) or a connection that failed before the
# request left. A 5xx (a gateway's 502/504 often comes after the API stored the message),
# a lost answer or an answer of the wrong shape may follow a created message: MaybeSentError.
POST_RETRY_STATUSES = frozenset({429})
BACKOFF_BASE = 0.5
BACKOFF_CAP = 8.0
# A Retry-After longer than this is not waited out: the command fails and says so. The
# waits between one request's attempts add up to no more than this either, so a server
# asking for 100 s on every answer cannot hold a command for retries x 100 s.
MAX_RETRY_AFTER = 120.0
# A request that may take more than a day is not bounded at all (and inf or 1e308 would
# overflow the socket and clock arithmetic).
MAX_TIMEOUT = 86400.0
# More clock difference than this is reported with a 401 (the API checks timestamps).
SKEW_REPORT_SECONDS = 30.0
SENSITIVE_HEADERS = frozenset({signing.SECRET_HEADER.lower(), signing.PASSPHRASE_HEADER.lower()})


# --------------------------------------------------------------------------- URLs and TLS


def check_api_url(url: str) -> str:
    """The API base URL without a trailing slash; plain http only for loopback hosts."""
    try:
        parts = urlsplit(url)
        valid = parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number 0-65535
    except ValueError:  # also 'http://[x': an unbalanced IPv6 bracket
        valid = False
    if not valid:
        raise UsageError(f"API URL {url!r} is not an https:// URL (e.g. https://api.outkit.io/v1)")
    scheme = parts.scheme.lower()
    if scheme == "http" and not is_loopback(parts.hostname):
        raise UsageError(
            f"refusing plain http:// API URL {url}: the Outkit API is HTTPS-only "
            "(http:// is allowed only for loopback hosts such as 127.0.0.1 or localhost)"
        )
    return url.rstrip("/")


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds from now (float, 0 to ``RETRY_AFTER_CAP``), or None.

    RFC 9110 section 10.2.3: delta-seconds (digits; a decimal fraction is taken too) or an
    HTTP date. The header is the server's, so untrusted: a value beyond a day (``1e308``,
    a date in year 9999) is a day, and ``inf``, ``nan``, exponents and signs other than a
    leading ``-`` (taken as 0) are not delta-seconds: None, as for any header that does
    not parse.
    """
    if not value:
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):
        seconds = float(value)
    else:
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return min(max(0.0, seconds), RETRY_AFTER_CAP)


# delta-seconds = 1*DIGIT (RFC 9110 section 10.2.3), with the fraction and the minus sign
# some servers send; never an exponent, inf or nan (float() would take those)
_DELTA_SECONDS = re.compile(r"-?[0-9]+(\.[0-9]+)?", re.ASCII)
# A Retry-After beyond this is read as this (it is over MAX_RETRY_AFTER, so never waited).
RETRY_AFTER_CAP = 86400.0


def clock_skew(date_header: str | None, now: float | None = None) -> float | None:
    """Server clock minus local clock in seconds, from a response's Date header."""
    if not date_header:
        return None
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(date_header)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return when.timestamp() - (time.time() if now is None else now)


def describe_skew(skew: float) -> str:
    amount = abs(skew)
    text = f"{amount / 60:.1f} min" if amount >= 120 else f"{amount:.0f} s"
    side = "behind" if skew > 0 else "ahead of"
    return f"your clock is {text} {side} the server's"


# --------------------------------------------------------------------------- backoff


class Backoff:
    """Delays between attempts, shareable between threads.

    ``delay(attempt)`` is exponential with "equal jitter" (half fixed, half random), capped.
    ``pause_all(seconds)`` makes every user of this object wait before its next attempt:
    that is how one 429 (and its Retry-After) slows down all batch workers at once.
    """

    def __init__(
        self,
        base: float = BACKOFF_BASE,
        cap: float = BACKOFF_CAP,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.base = base
        self.cap = cap
        self.sleep = sleep
        self.clock = clock
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._not_before = 0.0

    def delay(self, attempt: int) -> float:
        ceiling = min(self.cap, self.base * (2**attempt))
        with self._lock:
            return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    def pause_all(self, seconds: float) -> None:
        with self._lock:
            self._not_before = max(self._not_before, self.clock() + seconds)

    def paused_for(self) -> float:
        with self._lock:
            return max(0.0, self._not_before - self.clock())

    def wait_turn(self, deadline: float | None = None) -> None:
        """Sleep while a shared pause is in force (never past ``deadline``)."""
        while True:
            remaining = self.paused_for()
            if remaining <= 0:
                return
            if deadline is not None:
                left = deadline - self.clock()
                if left <= 0:
                    return
                remaining = min(remaining, left)
            self.sleep(remaining)


# --------------------------------------------------------------------------- requests


class DeadlineReached(NetworkError):
    """The caller's overall deadline (e.g. --wait-timeout) ran out during a request."""


# pages of a list followed at most (each asked for with a `before` not seen yet)
MAX_LIST_PAGES = 1000


# A link-value of an RFC 8288 `Link` header: `<URI>` then its parameters up to the next
# link-value (a `<` cannot appear unquoted in them); `rel` holds space-separated types.
_LINK_VALUE = re.compile(r"<([^<>]*)>([^<]*)")
_REL = re.compile(r';\s*rel\s*=\s*(?:"([^"]*)"|([^\s;,"]+))', re.IGNORECASE)


def _next_before(headers: Mapping[str, str]) -> str | None:
    """The `before` parameter of the `Link: <...>; rel="next"` header (RFC 8288 section 3)
    of a list page, or None when there is none or it is not a plain message id."""
    from urllib.parse import parse_qs, urlsplit

    value = headers.get("Link") or ""
    for url, params in _LINK_VALUE.findall(value[:8192]):
        rel = _REL.search(params)
        if rel is None or "next" not in (rel.group(1) or rel.group(2) or "").lower().split():
            continue
        before = parse_qs(urlsplit(url).query).get("before", [])
        if len(before) == 1 and 0 < len(before[0]) <= 200 and before[0].isprintable():
            return before[0]
    return None


@dataclass
class ApiResponse:
    status: int
    data: Any
    headers: Mapping[str, str]
    elapsed: float  # seconds, the last attempt
    attempts: int = 1
    error: Mapping[str, Any] | None = None  # the error object of an accepted non-2xx answer
    listed: int = 0  # a list: the messages the server answered, before the client's filter

    @property
    def skew(self) -> float | None:
        return clock_skew(self.headers.get("Date"))


@dataclass
class PreparedCall:
    """A request exactly as it would be sent (for --dry-run and --curl)."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes = b""
    has_credentials: bool = True  # False: a dry run without credentials, no auth headers


def mask_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: ("****" if k.lower() in SENSITIVE_HEADERS else v) for k, v in headers.items()}


def base_headers(has_body: bool) -> dict[str, str]:
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    if has_body:
        headers["Content-Type"] = "application/json"
    return headers


def join_url(base_url: str, path: str, params: Mapping[str, Any] | None = None) -> str:
    url = base_url.rstrip("/") + "/" + path.lstrip("/")
    query = {k: v for k, v in (params or {}).items() if v is not None}
    return f"{url}?{urlencode(query, doseq=True)}" if query else url


def message_path(message_id: str) -> str:
    # ids are opaque: quote everything so an id can never change the path
    return "messages/" + quote(message_id, safe="")


def prepare_call(
    settings: Any,
    method: str,
    path: str,
    *,
    body: bytes = b"",
    params: Mapping[str, Any] | None = None,
    timestamp: int | None = None,
    form: Form | None = None,
    base_url: str | None = None,
) -> PreparedCall:
    """The exact request for ``method path``: URL, headers (signed over ``body``), body.
    With ``form`` (a create with attachments) its multipart body is sent and its
    `message` part is what gets signed (multipart.py).

    Without credentials the auth headers are left out (dry runs still show the request).
    ``base_url``: ``settings.api_url`` already checked (a client checks it once, not on
    every request of a batch).
    """
    url = join_url(base_url or check_api_url(settings.api_url), path, params)
    headers = base_headers(bool(body) or form is not None)
    if form is not None:
        headers["Content-Type"] = form.content_type
    has_creds = bool(settings.key and settings.passphrase and settings.secret)
    if has_creds:
        headers.update(
            signing.auth_headers(
                key=settings.key,
                passphrase=settings.passphrase,
                secret=settings.secret,
                method=method,
                path=signing.request_target(url),
                body=form.signed if form is not None else body,
                signed=settings.signed,
                timestamp=timestamp,
            )
        )
    return PreparedCall(
        method.upper(), url, headers, form.body if form is not None else body, has_creds
    )


class Client:
    """A signed-request client for one set of settings (one transport, one pool)."""

    def __init__(
        self,
        settings: Any,
        *,
        backoff: Backoff | None = None,
        pool_size: int = 10,
        timeout: float | None = None,
        retries: int | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        """``limiter`` paces every attempt (batches); None sends as soon as asked.

        Raises UsageError for settings that cannot work (URL, timeout, proxy, CA bundle)
        and AuthError when credentials are missing.
        """
        settings.require_credentials()
        self.settings = settings
        self.base_url = check_api_url(settings.api_url)
        self.timeout = float(settings.timeout if timeout is None else timeout)
        self.retries = int(settings.retries if retries is None else retries)
        if not 0 < self.timeout <= MAX_TIMEOUT:  # also NaN; inf would overflow the clock
            raise UsageError(
                f"--timeout must be more than 0 and at most {MAX_TIMEOUT:g} seconds (from "
                f"{self.settings.sources.get('timeout', 'the command line')})"
            )
        if self.retries < 0:
            raise UsageError("--retries must not be negative")
        self.backoff = backoff or Backoff()
        self.limiter = limiter
        self.transport = Transport(self.base_url, settings.ca_bundle, pool_size)

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the API -------------------------------------------------------------------------

    def create_message(
        self, body: bytes, *, id_from_submitter: str | None = None, form: Form | None = None
    ) -> Any:
        """POST /messages with ``body`` (the exact bytes to send and sign), or with
        ``form``, a multipart body with attachments.

        Raises MaybeSentError (exit 8) whenever the message may have been created without
        the answer saying so: a 5xx, a lost answer, a 2xx answer whose ``data`` is not a
        message object; the error says how to find the message. Other failures (4xx, a
        429 after the retries) mean it was not created."""
        resp = self.request(
            "POST", "messages", body=body, id_from_submitter=id_from_submitter, form=form
        )
        if not _is_message(resp.data):
            raise MaybeSentError(
                self._lost_post(_odd_answer(self._host(), resp, "a message"), id_from_submitter)
            )
        return resp

    def get_message(self, message_id: str, *, deadline: float | None = None) -> ApiResponse:
        """GET /messages/{id}. Raises ServerError (exit 7) unless ``data`` is a message."""
        resp = self.request("GET", message_path(message_id), deadline=deadline)
        if not _is_message(resp.data):
            raise ServerError(_odd_answer(self._host(), resp, "a message") + "; check --api-url")
        return resp

    def list_messages(
        self,
        *,
        limit: int | None = None,
        status: str | None = None,
        id_from_submitter: str | Sequence[str] | None = None,
    ) -> ApiResponse:
        """``GET /v1/messages``, newest first. ``id_from_submitter`` may name several (sent
        as repeated parameters; the sandbox answers them all in one list)."""
        params = {"limit": limit, "status": status, "id_from_submitter": id_from_submitter}
        resp = self._list_page(params)
        # A page cut short by size carries `Link: <...>; rel="next"` (RFC 8288; the
        # sandbox stops an answer at about 8 MiB): the next pages are asked for until
        # `limit` is reached. Only the link's `before` is taken from it, sent to the same
        # server with our own parameters: the URL itself is the server's to choose, not
        # ours to follow anywhere.
        data: list[Any] = list(resp.data)
        seen: set[str] = set()
        while limit is None or len(data) < limit:
            before = _next_before(resp.headers)
            if before is None or before in seen or len(seen) >= MAX_LIST_PAGES:
                break
            seen.add(before)
            left = None if limit is None else limit - len(data)
            resp = self._list_page({**params, "limit": left, "before": before})
            if not resp.data:
                break
            data += resp.data
        resp.data = data
        # The hosted API documents no filters on this list (reference/outkit-facts.md): a
        # server that ignores them answers its recent messages, and a batch that took the
        # first of those for "already sent" would skip rows it never sent. Keep only the
        # messages the filters ask for.
        resp.listed = len(resp.data)
        ids = [id_from_submitter] if isinstance(id_from_submitter, str) else id_from_submitter
        wanted_ids = None if ids is None else set(ids)
        resp.data = [
            m
            for m in resp.data
            if (status is None or m.get("status") == status)
            and (wanted_ids is None or m.get("id_from_submitter") in wanted_ids)
        ][:limit]
        return resp

    def _list_page(self, params: Mapping[str, Any]) -> ApiResponse:
        resp = self.request("GET", "messages", params=params)
        if not (isinstance(resp.data, list) and all(_is_listed(m) for m in resp.data)):
            raise ServerError(
                _odd_answer(self._host(), resp, "a list of messages") + "; check --api-url"
            )
        return resp

    # -- the machinery -------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes = b"",
        params: Mapping[str, Any] | None = None,
        accept: Iterable[int] = (),
        deadline: float | None = None,
        id_from_submitter: str | None = None,
        form: Form | None = None,
    ) -> ApiResponse:
        """Send with retries; 2xx (and statuses in ``accept``) return, the rest raise.

        ``deadline`` (time.monotonic) bounds the whole call including backoff sleeps;
        running past it raises ``DeadlineReached``.
        """
        method = method.upper()
        accept = frozenset(accept)
        attempt = 0
        waited = 0.0  # seconds asked for between this request's attempts so far
        while True:
            self.backoff.wait_turn(deadline)
            sent_at = self.limiter.acquire(deadline) if self.limiter else 0.0
            wait: float | None = None
            resp_status = 0
            try:
                resp, elapsed = self._send_once(method, path, body, params, deadline, form)
            except Unsent as exc:
                # which profile: a profile left pointing at a sandbox that has stopped
                error: OutkitError = UnreachableError(f"{exc}; {self.used()}")
            except AnswerTooLarge as exc:
                if method == "POST":
                    raise MaybeSentError(self._lost_post(str(exc), id_from_submitter)) from None
                raise NetworkError(str(exc)) from None  # the same answer would come again
            except MaybeSent as exc:
                if method == "POST":
                    raise MaybeSentError(self._lost_post(str(exc), id_from_submitter)) from None
                error = NetworkError(str(exc))
            else:
                if self.limiter is not None:
                    self.limiter.on_answer(resp.status_code, sent_at, resp.headers)
                retried = POST_RETRY_STATUSES if method == "POST" else RETRY_STATUSES
                if resp.status_code not in retried or resp.status_code in accept:
                    return self._finish(
                        method, resp, elapsed, attempt + 1, accept, id_from_submitter
                    )
                error = self._error_for(resp, _json_or_none(resp))
                resp_status = resp.status_code
                wait = parse_retry_after(resp.headers.get("Retry-After"))
                if wait is not None and wait > MAX_RETRY_AFTER:
                    asks = "a day or more" if wait >= RETRY_AFTER_CAP else f"{wait:.0f} s"
                    error.message += f"; the server asks to wait {asks}, not retrying"
                    raise error
            shared = 0.0
            if resp_status == 429:
                # everyone sharing this backoff waits, not just this caller
                shared = wait if wait is not None else self.backoff.delay(attempt)
                self.backoff.pause_all(shared)
            if attempt >= self.retries:
                if self.retries:
                    error.message += f" (gave up after {attempt + 1} attempts)"
                raise error
            pause = shared or (self.backoff.delay(attempt) if wait is None else wait)
            if waited + pause > MAX_RETRY_AFTER:
                error.message += (
                    f"; retrying would wait {pause:.0f} s more, over {MAX_RETRY_AFTER:g} s in "
                    "all for one request: not retrying"
                )
                raise error
            waited += pause
            if shared:
                pause = 0.0  # waited out in wait_turn, with the others
            if deadline is not None and time.monotonic() + pause >= deadline:
                raise DeadlineReached(error.message)
            debug(f"retrying in {max(pause, self.backoff.paused_for()):.2f} s: {error.message}")
            if pause > 0:
                self.backoff.sleep(pause)
            if self.limiter is not None:
                self.limiter.on_retry()
            attempt += 1

    def _send_once(
        self,
        method: str,
        path: str,
        body: bytes,
        params: Mapping[str, Any] | None,
        deadline: float | None,
        form: Form | None = None,
    ) -> tuple[Any, float]:
        timeout = self.timeout
        if deadline is not None:
            timeout = min(timeout, deadline - time.monotonic())
            if timeout <= 0:
                raise DeadlineReached("the time ran out")
        # a fresh timestamp and signature for every attempt
        call = prepare_call(
            self.settings, method, path, body=body, params=params, form=form,
            base_url=self.base_url,
        )  # fmt: skip
        if is_verbose():
            debug(f"> {method} {call.url}")
            for name, value in mask_headers(call.headers).items():
                debug(f"> {name}: {value}")
            if form is not None:
                debug(f"> ({len(call.body)} bytes of multipart/form-data)")
            elif body:
                debug(f"> ({len(body)} bytes of JSON)")
        started = time.monotonic()
        try:
            resp = self.transport.send(
                call.method, call.url, call.headers, call.body, timeout=timeout
            )
        except ReadTimedOut:
            if deadline is not None and time.monotonic() >= deadline:
                raise DeadlineReached("the time ran out waiting for an answer") from None
            raise
        elapsed = time.monotonic() - started
        debug(f"< HTTP {resp.status_code} in {elapsed * 1000:.0f} ms")
        return resp, elapsed

    def used(self) -> str:
        """Which credentials and API an answer came from, for error lines: a 422 from the
        sandbox when you meant production is then plain to see."""
        profile = self.settings.profile
        from_profile = self.settings.sources.get("key", "").startswith("profile")
        who = f"profile {profile!r}" if from_profile else "credentials from the environment"
        return f"{who} at {self.base_url}"

    def _host(self) -> str:
        parts = urlsplit(self.base_url)
        return parts.netloc or self.base_url

    def _lost_post(self, what: str, id_from_submitter: str | None) -> str:
        where = (
            f"; look for it with: outkit get --id-from-submitter {id_from_submitter}"
            if id_from_submitter
            else "; set --id-from-submitter next time so it can be looked up"
        )
        return (
            f"{what}; the request was sent, so the message may have been created. "
            f"Not retried, to avoid sending it twice{where}"
        )

    def _finish(
        self,
        method: str,
        resp: Any,
        elapsed: float,
        attempts: int,
        accept: frozenset[int],
        id_from_submitter: str | None = None,
    ) -> ApiResponse:
        payload = _json_or_none(resp)
        status = resp.status_code
        posted = method == "POST"
        if 200 <= status < 300:
            if not isinstance(payload, dict) or "data" not in payload:
                what = (
                    f"unexpected answer from {self._host()} (HTTP {status}, not an Outkit "
                    "JSON response)"
                )
                if posted:
                    raise MaybeSentError(self._lost_post(what, id_from_submitter))
                raise ServerError(f"{what}; check --api-url")
            return ApiResponse(status, payload["data"], resp.headers, elapsed, attempts)
        if status in accept:
            err = payload.get("error") if isinstance(payload, dict) else None
            return ApiResponse(
                status, None, resp.headers, elapsed, attempts, err if isinstance(err, dict) else {}
            )
        error = self._error_for(resp, payload)
        if posted and status >= 500:
            raise MaybeSentError(self._lost_post(error.message, id_from_submitter))
        raise error

    def _error_for(self, resp: Any, payload: Any) -> OutkitError:
        status = resp.status_code
        debug(f"< {resp.content[:500].decode('utf-8', 'replace')}")
        message, code = _server_message(payload)
        if not message:
            message = resp.reason or "no details given"
        text = f"{message} (HTTP {status}{', ' + code if code else ''})"
        if payload is None and resp.content:
            # a web page or a proxy's answer, not the API's JSON: most often an API URL
            # that misses its path (the sandbox's inbox URL instead of its /v1)
            kind = (resp.headers.get("Content-Type") or "no Content-Type")[:60]
            text += (
                f"; the answer is not the API's JSON ({kind}): check the API URL "
                f"{self.base_url} (the API's base URL ends in /v1)"
            )
        if status == 401:
            skew = clock_skew(resp.headers.get("Date"))
            if skew is not None and abs(skew) > SKEW_REPORT_SECONDS:
                text += f"; {describe_skew(skew)}: signed requests need an accurate clock"
        text += f"; {self.used()}"
        if status == 401:
            return AuthError(f"authentication failed: {text}")
        if status == 404:
            return NotFoundError(f"not found: {text}")
        if status == 429:
            return RateLimitedError(f"rate limited: {text}")
        if status >= 500:
            return ServerError(f"server error: {text}")
        if 400 <= status < 500:
            return RejectedError(f"rejected: {text}")
        location = resp.headers.get("Location")
        hint = f" to {location}" if location else ""
        return ServerError(f"unexpected HTTP {status}{hint} from the API; check --api-url")


def _is_message(data: Any) -> bool:
    # the fields a view, --wait and the batch read: an object with a string id
    # (API reference, "Message object")
    return isinstance(data, dict) and isinstance(data.get("id"), str) and bool(data["id"])


def _is_listed(data: Any) -> bool:
    # a list is filtered by these fields: a list or object in them (an odd server's) is
    # not a message (it crashed the filter, attacker trial 2)
    return _is_message(data) and all(
        data.get(name) is None or isinstance(data.get(name), str)
        for name in ("id_from_submitter", "status")
    )


def _odd_answer(host: str, resp: ApiResponse, expected: str) -> str:
    kind = type(resp.data).__name__ if resp.data is not None else "null"
    if isinstance(resp.data, dict):
        kind = "an object without a message id"
    return f"unexpected answer from {host} (HTTP {resp.status}: data is {kind}, not {expected})"


def _json_or_none(resp: Any) -> Any:
    try:
        return json.loads(resp.content)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


def _server_message(payload: Any) -> tuple[str, str]:
    if not isinstance(payload, dict):
        return "", ""
    err = payload.get("error")
    if not isinstance(err, dict):
        return "", ""
    return answer_text(err.get("message")), answer_text(err.get("code"))


def answer_text(value: Any) -> str:
    """A value from an API answer for one line of an error or a view: a string as it is,
    anything else (a number, an object, a list) as JSON text, never a Python repr; null is
    empty; controls escaped (terminal.escape_controls)."""
    from outkit_cli.output import shown

    try:
        return shown(value)
    except (RecursionError, ValueError):  # nested too deeply, or NaN-like floats
        return "(a value too deeply nested to show)"


def exact_headers(call: PreparedCall) -> dict[str, str]:
    """Every header that goes on the wire for ``call``, in order: what urllib3 adds (Host,
    Accept-Encoding, Content-Length; RFC 9110) around the call's own."""
    headers = {"Host": urlsplit(call.url).netloc, "Accept-Encoding": "identity"}
    if call.body or call.method in ("POST", "PUT", "PATCH"):
        headers["Content-Length"] = str(len(call.body))
    headers.update(call.headers)
    return headers
