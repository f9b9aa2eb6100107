"""Stopping `outkit serve` cleanly on SIGTERM or Ctrl-C.

A module of its own, importing nothing heavy: `serve` installs the handlers before it
imports the sandbox (about 0.2 s of imports), so that a signal during start-up is kept.
"""

from __future__ import annotations

import signal
from typing import Any


class StopRequest:
    """SIGTERM (and Ctrl-C, unless ignored as in a background job) ask for a clean stop.

    `install` before anything starts: a signal that comes while the sandbox is still
    starting (a supervisor that gives up at once) is kept, and the sandbox stops as soon as
    it has started, with exit 0, instead of dying of the signal half-way. The handler only
    sets a flag: nothing is interrupted half-way.
    """

    def __init__(self) -> None:
        self.requested = False

    def install(self) -> StopRequest:
        def on_signal(signum: int, frame: Any) -> None:
            self.requested = True

        signal.signal(signal.SIGTERM, on_signal)
        if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
            signal.signal(signal.SIGINT, on_signal)
        return self
