"""Faults on demand for testing clients: rate limit, random 503s, added latency, a clock
that is off."""

from __future__ import annotations

import math
import random
import threading
import time
from dataclasses import dataclass


@dataclass
class Faults:
    rate_limit: float | None = None  # requests per second per key
    fail_rate: float = 0.0  # share of requests answered 503, before anything else happens
    latency_ms: float = 0.0  # added to every response
    clock_skew: float = 0.0  # seconds the server's clock pretends to be off (+ is ahead)

    def __post_init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def now(self) -> float:
        """The server's idea of the time: what timestamps are checked against and what the
        Date header says, so a client that reads the Date header sees the same skew."""
        return time.time() + self.clock_skew

    def should_fail(self) -> bool:
        return self.fail_rate > 0 and random.random() < self.fail_rate

    def retry_after(self, key: str) -> int | None:
        """None when ``key`` may go on; otherwise the seconds to wait (Retry-After).

        A token bucket per key holding up to N tokens (at least 1), refilled at N per
        second: a burst of N passes, then N per second.
        """
        if not self.rate_limit:
            return None
        rate = self.rate_limit
        burst = max(1.0, rate)  # a rate under 1/s still lets one request through
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (burst, now))
            tokens = min(burst, tokens + (now - last) * rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return None
            self._buckets[key] = (tokens, now)
        return max(1, math.ceil((1 - tokens) / rate))

    def delay(self) -> None:
        if self.latency_ms > 0:
            time.sleep(self.latency_ms / 1000)
