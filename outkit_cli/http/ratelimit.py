"""Sending rate for a batch: a fixed pace (`--rate N`), or one that adapts to 429s.

A hosted API limits each key to some requests per second. A batch that only learns of the
limit from 429 answers loses time to Retry-After pauses and hammers the server; one that
paces itself below the limit leaves capacity unused. `RateLimiter` does what AWS CLI's
adaptive retry mode does (botocore ``retries/adaptive.py``, ``retries/standard.py``):

- no limit known: requests go out as fast as the workers send them, while the limiter
  measures the rate actually sent;
- on a 429 the pace drops to BETA (0.7) times the rate that was being sent, and every
  request waits out the answer's Retry-After (`client.Backoff.pause_all`);
- after that the allowed rate grows back along a CUBIC curve (RFC 9438): quickly at
  first, flat near the rate that drew the 429, then faster again, probing for more;
- one 429 cut per round: 429s to requests sent before the last cut do not cut again
  (they were in flight when it happened), as TCP congestion control reacts once per window.

With ``rate`` given (`--rate N`, profile ``rate``) the pace is fixed at N requests per
second, spread evenly; 429s still pause everyone for their Retry-After.

An API that advertises its limit in a ``RateLimit-Policy`` header (IETF
draft-ietf-httpapi-ratelimit-headers; the sandbox's ``--rate-limit`` sends it) is not
probed at all: from the first answer that carries it, the pace is the tightest per-second
or per-minute quota it names (quota / window), and neither the adaptive pace nor a
``--rate`` above it goes faster. Policies over longer windows (hourly, daily quotas) cap
volume, not pace: pacing a batch of 50 rows to a daily quota's average would take hours,
so those are left to their 429 and its Retry-After.

Requests are spread evenly: each takes the next slot of a schedule ``1/rate`` apart,
starting with the first request (not when the limiter was made); a schedule that fell
behind makes up at most CATCH_UP_SLOTS slots and CATCH_UP_SECONDS at once, so idle workers
never turn into a burst that a per-second limit would count.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

BETA = 0.7  # the share of the sending rate kept after a 429 (botocore, RFC 9438 section 4.6)
CUBIC_C = 0.4  # growth scale of the CUBIC curve (RFC 9438 section 4.2, botocore)
MIN_RATE = 0.5  # requests per second: adapting never paces slower than this
# --rate's range: one message in ~17 minutes up to far beyond any API's limit
MIN_FIXED_RATE = 0.001
MAX_FIXED_RATE = 100_000.0
MEASURE_WINDOW = 0.5  # seconds per sample of the measured sending rate
SMOOTHING = 0.8  # weight of the newest sample in the measured rate (botocore)
# Slots a schedule that fell behind may make up at once (a worker overslept, or all were
# busy): without it the pace drifts below the rate; with more it would come in bursts.
CATCH_UP_SLOTS = 4
# ... and never more than this much time: at 2/s, four slots would be 5 requests at once.
CATCH_UP_SECONDS = 0.05
# RateLimit-Policy windows up to this many seconds pace a batch (see the module docstring)
PACED_WINDOW = 60


@dataclass
class RateStats:
    """What a batch's summary reports about its traffic."""

    requests: int = 0
    throttled: int = 0  # answers with status 429
    retries: int = 0
    paced_rate: float | None = None  # the pace in force at the end (None: never paced)
    fixed: bool = False
    advertised: float | None = None  # requests per second the API's RateLimit-Policy allows
    at_advertised: bool = False  # the pace in force at the end is the advertised limit

    def describe(self) -> str:
        """A summary fragment, e.g. '1204 requests, 3 answered 429 (0.2%), 3 retries'."""
        share = f" ({self.throttled / self.requests:.1%})" if self.requests else ""
        text = f"{self.requests} request{'' if self.requests == 1 else 's'}, "
        text += f"{self.throttled} answered 429{share}, "
        text += f"{self.retries} retr{'y' if self.retries == 1 else 'ies'}"
        if self.advertised and self.at_advertised:
            text += f", paced at {self.advertised:g}/s (the limit the API advertises)"
        elif self.fixed and self.paced_rate:
            text += f", paced at {self.paced_rate:g}/s"
        elif self.paced_rate:
            text += f", adapted to {self.paced_rate:.0f}/s"
        return text


def advertised_rate(policy: str) -> float | None:
    """Requests per second that a ``RateLimit-Policy`` header value allows a batch.

    ``policy``: the field value, a Structured Fields list (RFC 9651) of policies, each
    with parameters ``q`` (quota, an integer), ``w`` (window in seconds) and ``qu`` (quota
    unit; only ``"requests"``, the default, counts). Both the current draft's form
    (``"default";q=100;w=60``) and draft 07's (``100;w=60``, the quota as the item) are
    read. Returns q / w of the tightest policy whose window is at most PACED_WINDOW
    seconds, or None when there is none or the value does not parse (an API's header
    must never stop a batch; its 429s still pace it).
    """
    from http_sf import parse

    try:
        members = parse(policy.encode("ascii"), tltype="list")
    except (ValueError, UnicodeEncodeError):
        return None
    rates = []
    for member in members if isinstance(members, list) else ():
        if not isinstance(member, tuple) or len(member) != 2:
            continue
        item, params = member
        if not isinstance(params, dict):
            continue
        quota = params.get("q", item)
        window = params.get("w")
        if params.get("qu", "requests") != "requests":
            continue  # a quota of bytes or of concurrent requests says nothing of pace
        # bool is an int in Python: ?1 is not a quota
        if isinstance(quota, bool) or isinstance(window, bool):
            continue
        if not isinstance(quota, int) or not isinstance(window, int):
            continue
        if quota > 0 and 0 < window <= PACED_WINDOW:
            rates.append(quota / window)
    if not rates:
        return None
    return min(MAX_FIXED_RATE, max(MIN_RATE, min(rates)))


class RateLimiter:
    """Paces requests shared by every worker of one client (thread-safe)."""

    def __init__(
        self,
        rate: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """``rate``: a fixed pace in requests per second; None adapts to 429s."""
        if rate is not None and not MIN_FIXED_RATE <= rate <= MAX_FIXED_RATE:
            raise ValueError(f"rate must be from {MIN_FIXED_RATE} to {MAX_FIXED_RATE}")
        self.clock = clock
        self.sleep = sleep
        self.fixed = rate is not None
        self.stats = RateStats(fixed=self.fixed)
        self._lock = threading.Lock()
        self._rate: float | None = rate  # the pace in force; None: unpaced
        self._fixed_rate = rate
        self._policy: str | None = None  # the last RateLimit-Policy value read
        self._ceiling: float | None = None  # what it allows (advertised_rate)
        self._next_slot: float | None = None  # set by the first request
        # adaptive state
        self._measured = 0.0
        self._window_start = clock()
        self._window_count = 0
        self._w_max = 0.0
        self._k = 0.0
        self._last_cut = float("-inf")

    @property
    def rate(self) -> float | None:
        return self._rate

    def acquire(self, deadline: float | None = None) -> float:
        """Wait for this request's slot (never past ``deadline``, a time.monotonic value).

        Returns the time the request is sent at, to pass to `on_answer`.
        """
        with self._lock:
            now = self.clock()
            self.stats.requests += 1
            self._measure(now)
            rate = self._rate
            if not self.fixed and self._last_cut > float("-inf"):
                rate = self._cubic(now)  # after a 429: growing back along the curve
            if self._ceiling is not None:
                rate = self._ceiling if rate is None else min(rate, self._ceiling)
            self._rate = rate
            if rate is None:
                return now
            interval = 1.0 / rate
            if self._next_slot is None:
                slot = now
            else:
                behind = min(CATCH_UP_SLOTS * interval, CATCH_UP_SECONDS)
                slot = max(self._next_slot, now - behind)
            self._next_slot = slot + interval
        wait = slot - now
        if deadline is not None:
            wait = min(wait, max(0.0, deadline - now))
        if wait > 0:
            self.sleep(wait)
        return slot

    def on_answer(
        self, status: int, sent_at: float, headers: Mapping[str, str] | None = None
    ) -> None:
        """Record an answer's status for the request sent at ``sent_at``, and the limit
        its ``headers`` advertise (``RateLimit-Policy``), if any."""
        policy = headers.get("RateLimit-Policy") if headers is not None else None
        if policy is not None and policy != self._policy:
            self._learn(policy)
        if status != 429:
            return
        with self._lock:
            self.stats.throttled += 1
            if self.fixed or sent_at < self._last_cut:
                return  # already cut for this round of requests
            now = self.clock()
            sending = self._measured or self._window_rate(now)
            # the pace in force, or what was actually sent if that was less
            current = min(self._rate or sending, sending or self._rate or 0.0)
            if not current:
                return
            self._w_max = current
            self._k = (current * (1 - BETA) / CUBIC_C) ** (1 / 3)
            self._last_cut = now
            self._rate = max(MIN_RATE, current * BETA)
            self._next_slot = now

    def _learn(self, policy: str) -> None:
        ceiling = advertised_rate(policy[:1000])  # a header is no place for a novel
        with self._lock:
            self._policy = policy
            self._ceiling = ceiling
            self.stats.advertised = ceiling
            if ceiling is None:
                self._rate = self._fixed_rate if self.fixed else self._rate
            elif self.fixed:
                assert self._fixed_rate is not None
                self._rate = min(self._fixed_rate, ceiling)

    def on_retry(self) -> None:
        with self._lock:
            self.stats.retries += 1

    def snapshot(self) -> RateStats:
        with self._lock:
            paced = self._rate
            self.stats.at_advertised = (
                self._ceiling is not None and paced is not None and paced >= self._ceiling
            )
            if paced is not None and not self.fixed and self._measured:
                # an allowed pace above what was sent (slow answers, failures) held nothing
                # back: report the rate that was actually sent
                paced = min(paced, self._measured)
            self.stats.paced_rate = paced
            return RateStats(**vars(self.stats))

    # -- adaptive pieces (called with the lock held) --------------------------------------

    def _cubic(self, now: float) -> float:
        """The allowed rate ``now``: RFC 9438's W_cubic(t) = C (t - K)^3 + W_max."""
        t = now - self._last_cut
        return max(MIN_RATE, CUBIC_C * (t - self._k) ** 3 + self._w_max)

    def _window_rate(self, now: float) -> float:
        elapsed = now - self._window_start
        return self._window_count / elapsed if elapsed > 0 else 0.0

    def _measure(self, now: float) -> None:
        self._window_count += 1
        elapsed = now - self._window_start
        if elapsed >= MEASURE_WINDOW:
            sample = self._window_count / elapsed
            self._measured = (
                sample if not self._measured
                else SMOOTHING * sample + (1 - SMOOTHING) * self._measured
            )  # fmt: skip
            self._window_start = now
            self._window_count = 0
