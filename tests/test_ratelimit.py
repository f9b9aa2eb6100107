"""Pacing and adapting a batch's sending rate (outkit_cli.http.ratelimit), on a fake clock;
test_batch.py runs it against the sandbox's rate limit."""

from __future__ import annotations

import itertools

import pytest

from outkit_cli.http.ratelimit import BETA, CATCH_UP_SLOTS, RateLimiter, advertised_rate


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_fixed_rate_spreads_requests_evenly() -> None:
    t = FakeTime()
    limiter = RateLimiter(50, clock=t.clock, sleep=t.sleep)
    sent = [limiter.acquire() for _ in range(101)]
    gaps = {round(b - a, 6) for a, b in itertools.pairwise(sent)}
    assert gaps == {0.02}
    # 100 intervals from the first request: no slot is taken up front
    assert t.now - 100.0 == pytest.approx(2.0)


@pytest.mark.parametrize("idle_before_first", [0.0, 30.0])
def test_fixed_rate_never_bursts_at_the_start(idle_before_first: float) -> None:
    """--rate 2: the first requests go 0.5 s apart, however long the batch took to start
    (a burst of five made a server's 2-per-second limit answer 429)."""
    t = FakeTime()
    limiter = RateLimiter(2, clock=t.clock, sleep=t.sleep)
    t.now += idle_before_first
    start = t.now
    sent_at = []
    for _ in range(5):
        limiter.acquire()
        sent_at.append(t.now - start)
    assert sent_at == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0])


def test_a_fast_schedule_that_fell_behind_makes_up_a_few_slots() -> None:
    t = FakeTime()
    limiter = RateLimiter(200, clock=t.clock, sleep=t.sleep)
    limiter.acquire()
    t.now += 1.0  # every worker was busy
    times = []
    for _ in range(10):
        limiter.acquire()
        times.append(t.now)
    assert times[: CATCH_UP_SLOTS + 1] == [times[0]] * (CATCH_UP_SLOTS + 1)
    assert times[-1] - times[0] == pytest.approx(5 * 0.005)


def test_fixed_rate_never_bursts_after_idle_time() -> None:
    t = FakeTime()
    limiter = RateLimiter(10, clock=t.clock, sleep=t.sleep)
    limiter.acquire()
    t.now += 60  # idle for a minute
    sent = [limiter.acquire() for _ in range(20)]
    # a few slots are made up at once, the rest are 0.1 s apart again
    assert sent[-1] - sent[0] >= 1.4


def test_fixed_rate_ignores_429_but_counts_it() -> None:
    t = FakeTime()
    limiter = RateLimiter(10, clock=t.clock, sleep=t.sleep)
    at = limiter.acquire()
    limiter.on_answer(429, at)
    limiter.on_retry()
    stats = limiter.snapshot()
    assert limiter.rate == 10 and stats.throttled == 1 and stats.retries == 1
    assert "1 answered 429" in stats.describe() and "paced at 10/s" in stats.describe()


def test_adaptive_is_unpaced_until_a_429() -> None:
    t = FakeTime()
    limiter = RateLimiter(clock=t.clock, sleep=t.sleep)
    for _ in range(1000):
        limiter.acquire()
        t.now += 0.001  # sending 1000/s
    assert t.now == pytest.approx(101.0) and limiter.rate is None


def test_adaptive_cuts_once_per_round_then_probes_upward() -> None:
    t = FakeTime()
    limiter = RateLimiter(clock=t.clock, sleep=t.sleep)
    sent = []
    for _ in range(1000):
        sent.append(limiter.acquire())
        t.now += 0.001
    # a 429 for the last four requests in flight: one cut, to BETA x the rate sent
    for at in sent[-4:]:
        limiter.on_answer(429, at)
    cut = limiter.rate
    assert cut == pytest.approx(1000 * BETA, rel=0.05)
    assert limiter.snapshot().throttled == 4
    # then the allowed rate climbs back (CUBIC): flat near 1000/s, beyond it later
    rates = []
    for _ in range(20):
        t.now += 1
        limiter.acquire()
        rates.append(limiter.rate)
    assert all(b >= a for a, b in itertools.pairwise(rates))
    assert rates[3] < 1000 < rates[-1]


def test_adaptive_rate_follows_a_server_limit() -> None:
    """A server allowing 200/s (token bucket, burst 200) and a limiter that cannot send
    faster than 1000/s: most of the time is spent near 200/s, few requests draw 429."""
    t = FakeTime()
    limiter = RateLimiter(clock=t.clock, sleep=t.sleep)
    tokens, last = 200.0, t.now
    throttled = ok = 0
    while t.now < 130:
        at = limiter.acquire()
        tokens = min(200.0, tokens + (t.now - last) * 200)
        last = t.now
        if tokens >= 1:
            tokens -= 1
            ok += 1
            limiter.on_answer(200, at)
        else:
            throttled += 1
            limiter.on_answer(429, at)
            t.now += 1  # Retry-After: 1
        t.now += 0.001
    assert ok / 30 >= 0.9 * 200
    assert throttled / (ok + throttled) <= 0.02


def test_the_summary_reports_the_rate_sent_when_the_pace_held_nothing_back() -> None:
    """After a cut, the allowed pace climbs (CUBIC) while slow answers keep the batch near
    2/s: the summary says 2/s, not the allowed 17/s nobody reached."""
    t = FakeTime()
    limiter = RateLimiter(clock=t.clock, sleep=t.sleep)
    for _ in range(20):
        at = limiter.acquire()
        t.now += 0.5  # slow answers: 2/s
    limiter.on_answer(429, at)
    for _ in range(60):
        limiter.acquire()
        t.now += 0.5
    assert limiter.rate is not None and limiter.rate > 5
    assert "adapted to 2/s" in limiter.snapshot().describe()


# -- an API that advertises its limit (RateLimit-Policy) ------------------------------------


@pytest.mark.parametrize(
    ("policy", "rate"),
    [
        ('"default";q=200;w=1', 200.0),  # the current draft's form, as the sandbox sends
        ("100;w=60", 100 / 60),  # draft 07: the quota is the item
        ('"burst";q=10;w=1, "minute";q=300;w=60', 5.0),  # the tightest pace wins
        ('"burst";q=10;w=1, "day";q=1000;w=86400', 10.0),  # a daily quota caps volume only
        ('"day";q=1000;w=86400', None),
        ('"x";q=1;w=2', 0.5),
        # express-rate-limit's standardHeaders "draft-8" (spaces after ';', a partition
        # key; the name changes with the values, so only the parameters count), as found
        # by uilibs/uiprotect#984 against a real server
        ('"10-in-1sec"; q=10; w=1; pk=:Zm9vYmFy:', 10.0),
        ('"10-in-1sec"; q=10; w=1, "1000-in-1day"; q=1000; w=86400', 10.0),
        ('"x";q=1;w=3600', None),
        ('"bytes";q=5000;w=1;qu="content-bytes"', None),  # not a count of requests
        ('"x";q=?1;w=1', None),  # a boolean is not a quota
        ('"x";q=1.5;w=1', None),  # nor a decimal
        ('"x";q=0;w=1', None),
        ('"x";q=-5;w=1', None),
        ('"x";q=5', None),  # no window: no pace
        ("garbage;;", None),
        ("", None),
        ("\x1b[2J", None),
        ("é", None),
    ],
)
def test_advertised_rate_reads_the_policy_header(policy: str, rate: float | None) -> None:
    got = advertised_rate(policy)
    assert got == (pytest.approx(rate) if rate is not None else None)


POLICY_10 = {"RateLimit-Policy": '"default";q=10;w=1'}


def test_adaptive_paces_at_the_advertised_limit_from_the_first_answer() -> None:
    """No 429 needed: the first answer's RateLimit-Policy sets the pace."""
    t = FakeTime()
    limiter = RateLimiter(clock=t.clock, sleep=t.sleep)
    at = limiter.acquire()
    limiter.on_answer(200, at, POLICY_10)
    start = t.now
    sent = [limiter.acquire() for _ in range(21)]
    assert sent[-1] - sent[0] == pytest.approx(2.0)  # 20 intervals of 0.1 s
    assert t.now - start == pytest.approx(2.0)
    assert "paced at 10/s (the limit the API advertises)" in limiter.snapshot().describe()


def test_adaptive_never_probes_above_the_advertised_limit_after_a_429() -> None:
    t = FakeTime()
    limiter = RateLimiter(clock=t.clock, sleep=t.sleep)
    at = limiter.acquire()
    limiter.on_answer(200, at, POLICY_10)
    for _ in range(20):
        at = limiter.acquire()
    limiter.on_answer(429, at, POLICY_10)  # another client shares the key
    assert limiter.rate == pytest.approx(10 * BETA)
    for _ in range(30):
        t.now += 1
        limiter.acquire()
        assert limiter.rate is not None and limiter.rate <= 10


@pytest.mark.parametrize(("given", "paced"), [(50.0, 10.0), (4.0, 4.0)])
def test_a_fixed_rate_above_the_advertised_limit_is_lowered_to_it(
    given: float, paced: float
) -> None:
    t = FakeTime()
    limiter = RateLimiter(given, clock=t.clock, sleep=t.sleep)
    at = limiter.acquire()
    limiter.on_answer(200, at, POLICY_10)
    sent = [limiter.acquire() for _ in range(11)]
    assert sent[-1] - sent[0] == pytest.approx(10 / paced)
    assert f"paced at {paced:g}/s" in limiter.snapshot().describe()


def test_a_policy_that_stops_parsing_falls_back_to_the_given_rate() -> None:
    t = FakeTime()
    limiter = RateLimiter(50, clock=t.clock, sleep=t.sleep)
    limiter.on_answer(200, limiter.acquire(), POLICY_10)
    limiter.on_answer(200, limiter.acquire(), {"RateLimit-Policy": "nonsense;;"})
    sent = [limiter.acquire() for _ in range(11)]
    assert sent[-1] - sent[0] == pytest.approx(10 / 50)
