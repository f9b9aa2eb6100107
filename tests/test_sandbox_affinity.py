"""`outkit serve --pin-cpu` (the default on Linux): the server's threads share one CPU,
its render processes get every CPU back (outkit_cli/sandbox/affinity.py).

Pinning is tried in child processes only: the test process itself is never pinned."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from outkit_cli.sandbox import affinity
from tests.sandbox_fixture import Sandbox
from tests.test_sandbox_api import WELCOME, post

Start = Callable[..., Sandbox]

pytestmark = pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="CPU affinity needs Linux and at least two CPUs to tell pinned from not",
)
ALL = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()


def _python(code: str, env: dict[str, str] | None = None) -> str:
    """Run `code` in a fresh interpreter; its stdout."""
    child_env = {k: v for k, v in os.environ.items() if k != affinity.ENV_CPUS}
    child_env.update(env or {})
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=child_env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _thread_cpus(pid: int) -> dict[int, set[int]]:
    return {int(tid): os.sched_getaffinity(int(tid)) for tid in os.listdir(f"/proc/{pid}/task")}


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/children") as f:
            kids += [int(k) for k in f.read().split()]
    return kids


def test_current_cpu_is_one_the_process_may_run_on() -> None:
    assert affinity.current_cpu() in ALL


def test_pinning_puts_every_thread_on_one_cpu_and_records_the_original_set() -> None:
    out = _python(
        """
        import os, threading
        from outkit_cli.sandbox import affinity
        stop = threading.Event()
        before = threading.Thread(target=stop.wait)  # a thread started before pinning
        before.start()
        cpu = affinity.pin_to_one_cpu().cpu
        after = threading.Thread(target=stop.wait)  # ... and one after: it inherits
        after.start()
        sets = {tuple(sorted(os.sched_getaffinity(int(t)))) for t in os.listdir("/proc/self/task")}
        print(cpu, sets, os.environ[affinity.ENV_CPUS], len(os.listdir("/proc/self/task")))
        stop.set()
        """
    )
    cpu, rest = out.split(" ", 1)
    assert int(cpu) in ALL
    assert rest == f"{{({cpu},)}} {','.join(map(str, sorted(ALL)))} 3"


def test_an_inherited_cpu_set_is_replaced_by_the_servers_own() -> None:
    out = _python(
        """
        import os
        from outkit_cli.sandbox import affinity
        affinity.pin_to_one_cpu()
        print(os.environ[affinity.ENV_CPUS])
        """,
        env={affinity.ENV_CPUS: "0"},
    )
    assert out == ",".join(map(str, sorted(ALL)))


def test_with_one_allowed_cpu_nothing_is_pinned_or_recorded() -> None:
    out = _python(
        f"""
        import os
        from outkit_cli.sandbox import affinity
        os.sched_setaffinity(0, {{{min(ALL)}}})
        try:
            affinity.pin_to_one_cpu()
        except affinity.NotPinned as exc:
            print(exc, os.environ.get(affinity.ENV_CPUS))
        """,
        env={affinity.ENV_CPUS: "0"},
    )
    assert out == "only one CPU is allowed None"


def test_without_sched_setaffinity_pinning_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "sched_setaffinity")
    monkeypatch.delenv(affinity.ENV_CPUS, raising=False)
    with pytest.raises(affinity.NotPinned, match="cannot pin threads"):
        affinity.pin_to_one_cpu()
    assert affinity.ENV_CPUS not in os.environ
    affinity.restore_cpus()  # nor fails in a child


def test_a_system_that_refuses_pinning_leaves_the_server_as_it_was(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(pid: int, cpus: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setaffinity", refuse)
    monkeypatch.delenv(affinity.ENV_CPUS, raising=False)
    with pytest.raises(affinity.NotPinned, match="refused to pin threads: Operation not permitted"):
        affinity.pin_to_one_cpu()
    assert affinity.ENV_CPUS not in os.environ
    monkeypatch.setenv(affinity.ENV_CPUS, "0,1")
    affinity.restore_cpus()  # refused: no exception


def test_a_cpu_the_system_refuses_is_passed_over_for_the_next() -> None:
    # a CPU going offline, or a cpuset narrowed meanwhile: sched_setaffinity says EINVAL
    # (rr-debugger/rr#3122 chose such a CPU and gave up)
    out = _python(
        """
        import errno, os
        from outkit_cli.sandbox import affinity
        real = os.sched_setaffinity
        here = affinity.current_cpu()
        def refuse_here(pid, cpus):
            if set(cpus) == {here}:
                raise OSError(errno.EINVAL, "Invalid argument")
            real(pid, cpus)
        os.sched_setaffinity = refuse_here
        cpu = affinity.pin_to_one_cpu().cpu
        print(here != cpu, sorted(os.sched_getaffinity(0)) == [cpu])
        """
    )
    assert out == "True True"


def test_an_interpreter_without_a_gil_is_not_pinned() -> None:
    # free-threaded Python (3.13t): threads run at once, one core would serialise them
    out = _python(
        """
        import os, sys
        from outkit_cli.sandbox import affinity
        sys._is_gil_enabled = lambda: False
        try:
            affinity.pin_to_one_cpu()
        except affinity.NotPinned as exc:
            print(exc, len(os.sched_getaffinity(0)) > 1, os.environ.get(affinity.ENV_CPUS))
        """
    )
    assert out == "this Python has no GIL: its threads may run at once True None"


def test_a_child_gets_the_recorded_set_back() -> None:
    out = _python(
        f"""
        import os
        from outkit_cli.sandbox import affinity
        os.sched_setaffinity(0, {{{min(ALL)}}})
        affinity.restore_cpus()
        print(sorted(os.sched_getaffinity(0)))
        """,
        env={affinity.ENV_CPUS: ",".join(map(str, sorted(ALL)))},
    )
    assert out == str(sorted(ALL))


@pytest.mark.parametrize(
    "value", ["", "x", "1,,2", "-1", "99999999999999999999999", "65536", "1.5", " , "]
)
def test_a_malformed_recorded_set_leaves_the_child_as_it_was(value: str) -> None:
    # the value comes from the environment: anything may be there
    out = _python(
        f"""
        import os
        from outkit_cli.sandbox import affinity
        os.sched_setaffinity(0, {{{min(ALL)}}})
        affinity.restore_cpus()
        print(sorted(os.sched_getaffinity(0)))
        """,
        env={affinity.ENV_CPUS: value},
    )
    assert out == str([min(ALL)])


def _render_children(sb: Sandbox) -> list[int]:
    post(sb, {**WELCOME, "sync": True})  # a message rendered: the render process is up
    kids = _children(sb.process.pid)
    assert kids, "no render process found"
    return kids


def test_serve_pins_its_threads_and_not_its_render_processes(start_sandbox: Start) -> None:
    sb = start_sandbox()
    kids = _render_children(sb)
    threads = _thread_cpus(sb.process.pid)
    assert len(threads) > 3  # the event loop, the HTTP pool, the worker, ...
    (cpus,) = {frozenset(cpus) for cpus in threads.values()}
    assert len(cpus) == 1
    for kid in kids:
        assert os.sched_getaffinity(kid) == ALL
    # the operator is told which CPU, and how to turn it off
    (cpu,) = cpus
    allowed = ",".join(map(str, sorted(ALL)))
    assert f"threads on CPU {cpu} (of {allowed}; " in sb.log()
    assert "--no-pin-cpu" in sb.log()


def test_serve_with_one_cpu_allowed_says_it_pinned_nothing(start_sandbox: Start) -> None:
    one = {max(ALL)}
    sb = start_sandbox(cpus=one)
    kids = _render_children(sb)
    assert "threads not pinned to a CPU: only one CPU is allowed" in sb.log()
    assert all(cpus == one for cpus in _thread_cpus(sb.process.pid).values())
    for kid in kids:
        assert os.sched_getaffinity(kid) == one


def test_serve_no_pin_cpu_leaves_every_thread_free(start_sandbox: Start, tmp_path: Path) -> None:
    # an OUTKIT_SANDBOX_CPUS in serve's environment is not taken for the server's set
    sb = start_sandbox(extra_args=("--no-pin-cpu",), env={affinity.ENV_CPUS: str(min(ALL))})
    kids = _render_children(sb)
    assert all(cpus == ALL for cpus in _thread_cpus(sb.process.pid).values())
    assert "threads on CPU" not in sb.log() and "not pinned" not in sb.log()
    for kid in kids:
        assert os.sched_getaffinity(kid) == ALL


@pytest.mark.parametrize(
    ("busy", "own", "move"),
    [
        ({0: 1.0, 1: 0.1}, 0.1, 1),  # others take 0.9 of our CPU, 0.1 of the other
        ({0: 1.0, 1: 0.1}, 0.9, None),  # our CPU is busy with our own work
        ({0: 1.0, 1: 1.0}, 0.1, None),  # everything busy: nowhere better
        ({0: 0.4, 1: 0.0}, 0.0, None),  # a little other work: not worth a move
        ({0: 0.9, 1: 0.7}, 0.0, None),  # better, but not by the margin
        ({0: 1.0, 1: 0.9, 2: 0.2, 3: 0.5}, 0.0, 2),  # the least busy of several
        ({1: 0.0}, 0.0, None),  # no figure for our own CPU
        ({0: 1.0}, 0.0, None),  # no other CPU
    ],
)
def test_better_cpu(busy: dict[int, float], own: float, move: int | None) -> None:
    assert affinity.better_cpu(0, busy, own) == move


def test_cpu_ticks_reads_each_cpu_and_leaves_out_what_does_not_parse(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    stat.write_text(
        "cpu  10 0 10 100 5 0 0 0 0 0\n"  # the sum over all CPUs: not a CPU
        "cpu0 10 1 2 100 5 3 4 5 0 0\n"
        "cpu1 x y z\n"
        "cpu2 1 2\n"
        "cpufreq 1 2 3 4 5\n"
        "intr 1 2 3\n"
    )
    assert affinity.cpu_ticks(str(stat)) == {0: (25, 130)}
    assert affinity.cpu_ticks(str(tmp_path / "missing")) == {}
    real = affinity.cpu_ticks()
    assert set(real) >= ALL
    assert all(0 <= busy <= total for busy, total in real.values())


def _rebalance(busy_cpu_share: str, own_share: str) -> str:
    """Pin a process, run a Rebalancer on made-up figures: the pinned CPU busy by
    `busy_cpu_share` of each tick, this process using `own_share` of a CPU; the CPUs its
    threads are on 1 s later, and how many moves it made."""
    return _python(
        f"""
        import os, threading, time
        from outkit_cli.sandbox import affinity
        stop = threading.Event()
        worker = threading.Thread(target=stop.wait)  # a thread that must move too
        worker.start()
        cpu, allowed = affinity.pin_to_one_cpu()
        t = [0]
        def ticks():
            t[0] += 100
            return {{n: (int(t[0] * {busy_cpu_share}) if n == cpu else 0, t[0]) for n in allowed}}
        start = time.monotonic()
        own = lambda: (time.monotonic() - start) * {own_share}
        lines = []
        r = affinity.Rebalancer(cpu, allowed, period=0.05, ticks=ticks, own_time=own,
                                log=lines.append)
        r.start()
        time.sleep(1)
        r.stop()
        sets = {{frozenset(os.sched_getaffinity(int(t))) for t in os.listdir("/proc/self/task")}}
        print(len(sets) == 1 and next(iter(sets)) == {{r.cpu}}, r.cpu != cpu, r.moves >= 1)
        print(lines[0] if lines else "")
        stop.set()
        """
    )


def test_the_rebalancer_moves_every_thread_off_a_cpu_others_keep_busy() -> None:
    moved, line = _rebalance("1.0", "0.0").splitlines()
    assert moved == "True True True"
    assert re.fullmatch(
        r"moved the server's threads from CPU \d+ to CPU \d+: other work kept CPU \d+ "
        r"100% busy, CPU \d+ 0%",
        line,
    )


def test_the_rebalancer_stays_when_the_cpu_is_busy_with_its_own_work() -> None:
    assert _rebalance("1.0", "1.0") == "True False False"
