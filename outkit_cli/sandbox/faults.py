"""Faults on demand for testing clients: rate limit, random 503s, added latency, a clock
that is off."""

from __future__ import annotations

import math
import random
import threading
import time
from dataclasses import dataclass
from fractions import Fraction

# The rates --rate-limit takes, requests per second per key: one per ~17 minutes to a
# million per second. Outside, the advertised policy stops making sense (1e-9/s was
# q=0, Retry-After a billion seconds; 1e300 a 301-digit q), and RFC 9651 Structured Field
# integers have at most 15 digits.
RATE_LIMIT_MIN = 0.001
RATE_LIMIT_MAX = 1_000_000.0
# RFC 9651 section 3.3.1: an Integer has at most 15 decimal digits
SF_INTEGER_MAX = 999_999_999_999_999


def rate_limit_policy(rate: float) -> tuple[int, int]:
    """``rate`` requests per second as (q, w): q requests per w seconds, both positive
    integers of at most 15 digits (RFC 9651 section 3.3.1), q / w as close to ``rate`` as
    a window of at most an hour allows (draft-ietf-httpapi-ratelimit-headers' q and w).

    Raises ValueError for a rate that is not finite or outside RATE_LIMIT_MIN to
    RATE_LIMIT_MAX."""
    if not math.isfinite(rate) or not RATE_LIMIT_MIN <= rate <= RATE_LIMIT_MAX:
        raise ValueError(
            f"a rate limit must be {RATE_LIMIT_MIN:g} to {RATE_LIMIT_MAX:,.0f} requests per second"
        )
    share = Fraction(rate).limit_denominator(3600)
    q, w = share.numerator, share.denominator
    if q < 1:  # cannot happen in range (1/1000 is exact); never advertise q=0
        q, w = 1, max(1, min(3600, round(1 / rate)))
    assert q <= SF_INTEGER_MAX and w <= SF_INTEGER_MAX
    return q, w


@dataclass
class Faults:
    rate_limit: float | None = None  # requests per second per key
    rate_limit_headers: bool = True  # advertise it (RateLimit-Policy, RateLimit)
    fail_rate: float = 0.0  # share of requests answered 503, before anything else happens
    latency_ms: float = 0.0  # added to every response
    clock_skew: float = 0.0  # seconds the server's clock pretends to be off (+ is ahead)

    def __post_init__(self) -> None:
        if self.rate_limit is not None:
            rate_limit_policy(self.rate_limit)  # raises ValueError out of range
        self._buckets: dict[str, tuple[float, float]] = {}
        self._policy: str | None = None  # the RateLimit-Policy field value, made once
        self._lock = threading.Lock()

    def now(self) -> float:
        """The server's idea of the time: what timestamps are checked against and what the
        Date header says, so a client that reads the Date header sees the same skew."""
        return time.time() + self.clock_skew

    def should_fail(self) -> bool:
        return self.fail_rate > 0 and random.random() < self.fail_rate

    def admit(self, key: str) -> tuple[int | None, dict[str, str]]:
        """Whether ``key`` may go on: (None, headers) when it may; otherwise (seconds to
        wait, for Retry-After; headers). With no --rate-limit: (None, {}).

        A token bucket per key holding up to N tokens (at least 1), refilled at N per
        second: a burst of N passes, then N per second. Unless ``rate_limit_headers`` is
        off, the headers advertise it as IETF draft-ietf-httpapi-ratelimit-headers does, on
        every answer to the key: ``RateLimit-Policy: "default";q=Q;w=W`` (Q requests per W
        seconds, N = Q / W in integers) and ``RateLimit: "default";r=R;t=T`` (R requests
        left now, the bucket full again in T seconds), so a client can pace itself without
        drawing a 429.
        """
        if not self.rate_limit:
            return None, {}
        rate = self.rate_limit
        burst = max(1.0, rate)  # a rate under 1/s still lets one request through
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (burst, now))
            tokens = min(burst, tokens + (now - last) * rate)
            wait = None
            if tokens >= 1:
                tokens -= 1
            else:
                wait = max(1, math.ceil((1 - tokens) / rate))
            self._buckets[key] = (tokens, now)
        if not self.rate_limit_headers:
            return wait, {}
        if self._policy is None:
            q, w = rate_limit_policy(rate)
            self._policy = f'"default";q={q};w={w}'
        headers = {
            "RateLimit-Policy": self._policy,
            "RateLimit": f'"default";r={int(tokens)};t={math.ceil((burst - tokens) / rate)}',
        }
        return wait, headers

    def delay(self) -> None:
        if self.latency_ms > 0:
            time.sleep(self.latency_ms / 1000)
