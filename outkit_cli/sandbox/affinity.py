"""Keep the sandbox's threads on one CPU (Linux), and give render processes the rest back.

Why: the sandbox is one Python process whose threads (the asyncio event loop, the pool
that runs the app, the worker) take turns holding the GIL. Spread over several CPUs, every
hand-over of the GIL wakes a thread on another core, and each request costs more CPU time
than when the threads share one core (figures: docs/sandbox.md, Speed; measured by
bench/bench_sandbox.py). Only one thread can run Python at a time anyway, so one core
loses nothing but those hand-overs. Render processes are separate interpreters with their
own GIL: they get back the CPU set the server started with, so the kernel can run a slow
template on another core than the server's (it may still share the server's core when
every other one is busy).

A pinned process cannot leave its core when other work lands on it (a second sandbox, a
build), so `Rebalancer` watches the CPUs' load (/proc/stat) and moves the server to the
least busy CPU of its set when others keep its own core busy.

Linux only (`os.sched_setaffinity`); elsewhere every function here does nothing.
"""

from __future__ import annotations

import contextlib
import os
import random
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

# the CPU set the server started with, for the render processes it starts (render_pool.py)
ENV_CPUS = "OUTKIT_SANDBOX_CPUS"


def current_cpu() -> int | None:
    """The CPU the calling thread last ran on, or None when the system does not say.

    Source: proc(5), /proc/[pid]/stat field 39 ("processor"); the second field, the
    command name in parentheses, may itself hold spaces and parentheses, so fields are
    counted from the last ')'.
    """
    try:
        with open("/proc/thread-self/stat", "rb") as f:
            stat = f.read()
        return int(stat[stat.rindex(b")") + 2 :].split()[36])
    except (OSError, ValueError, IndexError):
        return None


class NotPinned(Exception):
    """Pinning was not done; the message says why (for the operator, one line)."""


class Pinned(NamedTuple):
    cpu: int  # the CPU every thread is on
    allowed: frozenset[int]  # the CPUs the process could run on before


def pin_to_one_cpu() -> Pinned:
    """Pin every thread of this process to one CPU of its allowed set: the one the caller
    runs on when it is allowed, else the next that the system accepts (a CPU going offline
    refuses it). Threads started later inherit it.

    Records the original set in the environment (`ENV_CPUS`, CPU numbers separated by
    commas) for `restore_cpus` in child processes.

    Raises NotPinned when nothing was done: not Linux, an interpreter without a GIL
    (free-threaded Python 3.13+: its threads do run at once, and one core would serialise
    them), a single allowed CPU, or the system refused (a container's seccomp policy, say).
    Pinning is a speed-up: callers go on without it.
    """
    forget_cpus()  # a value inherited from the environment is not this server's set
    if not hasattr(os, "sched_setaffinity"):
        raise NotPinned("this system cannot pin threads to a CPU")
    if not _gil_enabled():
        raise NotPinned("this Python has no GIL: its threads may run at once")
    try:
        allowed = os.sched_getaffinity(0)
    except OSError as exc:
        raise NotPinned(f"the CPUs allowed are unknown: {exc.strerror}") from None
    if len(allowed) < 2:
        raise NotPinned("only one CPU is allowed")
    here = current_cpu()
    refused: OSError | None = None
    for cpu in sorted(allowed, key=lambda n: (n != here, n)):
        try:
            os.sched_setaffinity(0, {cpu})
            break
        except OSError as exc:  # offline, or no longer ours: the next
            refused = exc
    else:
        reason = refused.strerror if refused else "refused"
        raise NotPinned(f"the system refused to pin threads: {reason}")
    _pin_threads(cpu)
    os.environ[ENV_CPUS] = format_cpus(allowed)
    return Pinned(cpu, frozenset(allowed))


def format_cpus(cpus: Iterable[int]) -> str:
    """CPU numbers in order, separated by commas: the form of `ENV_CPUS`."""
    return ",".join(str(n) for n in sorted(cpus))


def _gil_enabled() -> bool:
    is_enabled = getattr(sys, "_is_gil_enabled", None)  # Python 3.13+
    return bool(is_enabled()) if callable(is_enabled) else True


def _pin_threads(cpu: int) -> None:
    """Every thread of this process on `cpu`: sched_setaffinity(0) sets the calling thread
    only; the others are listed in /proc/self/task."""
    try:
        tids = [int(name) for name in os.listdir("/proc/self/task")]
    except (OSError, ValueError):
        tids = [0]
    for tid in tids:
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            os.sched_setaffinity(tid, {cpu})


def forget_cpus() -> None:
    """Drop an `ENV_CPUS` this process inherited, so that its render processes keep the
    affinity they inherit instead of a set someone else recorded."""
    os.environ.pop(ENV_CPUS, None)


def recorded_cpus() -> set[int] | None:
    """The CPU set in `ENV_CPUS` (set by `pin_to_one_cpu` in this process or a parent), or
    None when there is none or it is malformed: it comes from the environment, so
    anything may be there."""
    value = os.environ.get(ENV_CPUS)
    if not value:
        return None
    try:
        cpus = {int(part) for part in value.split(",")}
    except ValueError:
        return None
    return cpus if cpus and all(0 <= cpu < 65536 for cpu in cpus) else None


def restore_cpus() -> None:
    """In a child process of a pinned server: run on the CPU set the server started with
    (`ENV_CPUS`). An absent or malformed value, or a set the system refuses, leaves the
    affinity as inherited: the child still works, only on the server's CPU."""
    cpus = recorded_cpus()
    if cpus and hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError, OverflowError):
            os.sched_setaffinity(0, cpus)


def cpu_ticks(path: str = "/proc/stat") -> dict[int, tuple[int, int]]:
    """Each CPU's (busy, total) clock ticks since boot, by CPU number; busy is all but
    idle and iowait. Source: proc(5), /proc/stat, lines `cpuN user nice system idle iowait
    irq softirq steal ...`; lines that do not parse are left out. Empty when the file
    cannot be read."""
    ticks: dict[int, tuple[int, int]] = {}
    try:
        with open(path, "rb") as f:
            lines = f.read().splitlines()
    except OSError:
        return ticks
    for line in lines:
        name, _, rest = line.partition(b" ")
        if not (name.startswith(b"cpu") and name[3:].isdigit()):
            continue
        try:
            fields = [int(x) for x in rest.split()]
        except ValueError:
            continue
        if len(fields) >= 5:
            total = sum(fields[:8])
            ticks[int(name[3:])] = (total - fields[3] - fields[4], total)
    return ticks


# a move pays only when other work takes at least this share of our CPU...
BUSY_ENOUGH = 0.5
# ... and this share more of it than of the CPU moved to
MARGIN = 0.25


def better_cpu(
    pinned: int,
    busy: Mapping[int, float],
    own: float,
    *,
    least: float = BUSY_ENOUGH,
    margin: float = MARGIN,
) -> int | None:
    """The CPU to move a pinned server to, or None to stay.

    `busy` gives each CPU of the allowed set its busy share (0.0-1.0) over the last period,
    `own` the share of a CPU this process used (its threads all run on `pinned`). Other
    work on `pinned` is its busy share less `own`; on any other CPU it is all of its busy
    share. Move to the CPU with the least other work when `pinned` has at least `least`
    of other work and more than that CPU's by over `margin`.
    """
    if pinned not in busy:
        return None
    others_here = max(0.0, busy[pinned] - own)
    candidates = [(share, cpu) for cpu, share in busy.items() if cpu != pinned]
    if not candidates or others_here < least:
        return None
    share, cpu = min(candidates)
    return cpu if others_here - share > margin else None


class Rebalancer:
    """About every `period` seconds, compare the load of other work on the server's CPU
    with the other CPUs of its set (`better_cpu`); after two looks in a row that say so,
    move every thread there. Two, not one: a short burst of other work is not worth a
    move. Each wait is `period` ±25% at random: two servers pinned to one CPU, each the
    other's "other work", would otherwise move together, and back, for ever; this way one
    moves first and the other then sees its CPU free."""

    def __init__(
        self,
        cpu: int,
        allowed: Iterable[int],
        *,
        period: float = 2.0,
        ticks: Callable[[], dict[int, tuple[int, int]]] = cpu_ticks,
        own_time: Callable[[], float] = time.process_time,
        log: Callable[[str], Any] = lambda line: None,
    ) -> None:
        """`cpu`: the CPU the server is pinned to; `allowed`: the set it may move within;
        `period`: seconds between looks; `ticks` and `own_time`: where the CPUs' ticks
        (as `cpu_ticks`) and this process's CPU seconds come from; `log` takes a line
        for each move."""
        self.cpu = cpu
        self.moves = 0
        self._allowed = frozenset(allowed)
        self._period = period
        self._ticks = ticks
        self._own_time = own_time
        self._log = log
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-rebalancer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        before, own_before, at = self._ticks(), self._own_time(), time.monotonic()
        wanted: int | None = None
        while not self._stop.wait(self._period * random.uniform(0.75, 1.25)):
            after, own_after, now = self._ticks(), self._own_time(), time.monotonic()
            busy = {
                cpu: (after[cpu][0] - before[cpu][0]) / (after[cpu][1] - before[cpu][1])
                for cpu in self._allowed
                if cpu in after and cpu in before and after[cpu][1] > before[cpu][1]
            }
            own = (own_after - own_before) / max(now - at, 1e-3)
            before, own_before, at = after, own_after, now
            target = better_cpu(self.cpu, busy, own)
            if target is None or target != wanted:
                wanted = target  # the first period that says so: wait for a second
                continue
            wanted = None
            try:
                os.sched_setaffinity(0, {target})
            except OSError:  # gone offline meanwhile: stay, look again later
                continue
            _pin_threads(target)
            self._log(
                f"moved the server's threads from CPU {self.cpu} to CPU {target}: other work "
                f"kept CPU {self.cpu} {busy[self.cpu] - own:.0%} busy, CPU {target} "
                f"{busy[target]:.0%}"
            )
            self.cpu = target
            self.moves += 1
