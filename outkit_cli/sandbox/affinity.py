"""Keep the sandbox's threads on one CPU (Linux), and give render processes the rest back.

Why: the sandbox is one Python process whose threads (the asyncio event loop, the pool
that runs the app, the worker) take turns holding the GIL. Spread over several CPUs, every
hand-over of the GIL wakes a thread on another core, and on this 2-core machine that made
each request cost about twice the CPU time it costs when the threads share one core
(bench/bench_sandbox.py: POST /v1/messages at 0.32x the fixed-JSON handler unpinned,
0.47x pinned). Only one thread can run Python at a time anyway, so one core loses nothing
but those hand-overs. Render processes are separate interpreters with their own GIL: they
get the original CPU set back, so a slow template never shares the server's core.

Linux only (`os.sched_setaffinity`); elsewhere every function here does nothing.
"""

from __future__ import annotations

import contextlib
import os
import sys

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


def pin_to_one_cpu() -> int | None:
    """Pin every thread of this process to one CPU of its allowed set: the one the caller
    runs on when it is allowed, else the next that the system accepts (a CPU going offline
    refuses it). Threads started later inherit it.

    Records the original set in the environment (`ENV_CPUS`, CPU numbers separated by
    commas) for `restore_cpus` in child processes. Returns the CPU, or None when nothing
    was done: not Linux, a single allowed CPU, an interpreter without a GIL (free-threaded
    Python 3.13+: its threads do run at once, and one core would serialise them), or the
    system refused (a container's seccomp policy, say); pinning is a speed-up, so it
    never fails the server.
    """
    forget_cpus()  # a value inherited from the environment is not this server's set
    if not hasattr(os, "sched_setaffinity") or not _gil_enabled():
        return None
    try:
        allowed = os.sched_getaffinity(0)
    except OSError:
        return None
    if len(allowed) < 2:
        return None
    here = current_cpu()
    for cpu in sorted(allowed, key=lambda n: (n != here, n)):
        try:
            os.sched_setaffinity(0, {cpu})
            break
        except OSError:  # offline, or no longer ours: the next
            continue
    else:
        return None
    try:
        # sched_setaffinity(0) set the calling thread only; the others are in /proc
        tids = [int(name) for name in os.listdir("/proc/self/task")]
    except (OSError, ValueError):
        tids = []
    for tid in tids:
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            os.sched_setaffinity(tid, {cpu})
    os.environ[ENV_CPUS] = ",".join(str(n) for n in sorted(allowed))
    return cpu


def _gil_enabled() -> bool:
    is_enabled = getattr(sys, "_is_gil_enabled", None)  # Python 3.13+
    return bool(is_enabled()) if callable(is_enabled) else True


def forget_cpus() -> None:
    """Drop an `ENV_CPUS` this process inherited, so that its render processes keep the
    affinity they inherit instead of a set someone else recorded."""
    os.environ.pop(ENV_CPUS, None)


def restore_cpus() -> None:
    """In a child process of a pinned server: run on the CPU set the server started with
    (`ENV_CPUS`). An absent or malformed value, or a set the system refuses, leaves the
    affinity as inherited: the child still works, only on the server's CPU."""
    value = os.environ.get(ENV_CPUS)
    if not value or not hasattr(os, "sched_setaffinity"):
        return
    with contextlib.suppress(OSError, ValueError, OverflowError):
        cpus = {int(part) for part in value.split(",")}
        if cpus and all(0 <= cpu < 65536 for cpu in cpus):
            os.sched_setaffinity(0, cpus)
