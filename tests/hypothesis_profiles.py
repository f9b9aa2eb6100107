"""Hypothesis profiles for the reliability suite: `default` keeps the suite fast,
`fuzz` (HYPOTHESIS_PROFILE=fuzz, as `make fuzz` sets it) tries many more inputs.

The property and fuzz tests size themselves with `examples(n)`: an explicit
`settings(max_examples=...)` on a test would override any profile, so the factor is
applied here instead.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "default")
FACTOR = {"default": 1, "fuzz": 40}.get(PROFILE, 1)

# Every test in this suite runs under the autouse, function-scoped `isolated_env`
# fixture (a temp config and HOME): the same for every example, so that check is moot.
_COMMON = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
}
settings.register_profile("fuzz", print_blob=True, **_COMMON)
if PROFILE == "fuzz":
    settings.load_profile("fuzz")


def examples(n: int) -> int:
    """`n` examples normally, FACTOR times more under the fuzz profile."""
    return n * FACTOR


def reliability(n: int) -> settings:
    """The settings of one property/fuzz test that tries `n` (scaled) examples."""
    return settings(max_examples=examples(n), **_COMMON)  # type: ignore[arg-type]
