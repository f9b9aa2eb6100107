"""Rendering bounded in time, memory and output: child processes with resource limits.

A template is untrusted and Handlebars can multiply work: three nested `{{#each}}` over a
250-item list are 15 million iterations. So the sandbox never renders in its own process.
Each render is a job for a child process (`python -m outkit_cli.sandbox.render_pool`) that
runs with an address-space limit (RLIMIT_AS), no file writes (RLIMIT_FSIZE 0) and a CPU
backstop (RLIMIT_CPU); the parent waits for the answer until a deadline and kills the child
when it passes. The HTTP threads never wait on a render they did not ask for, and a
message over a limit ends in `render_error` whose `status_message` names the limit.

Jobs and answers are length-prefixed JSON frames (4-byte big-endian length) on the child's
stdin and stdout. A child renders one job at a time; the pool keeps up to `size` of them
alive (the background worker and `sync` requests render at the same time) and replaces any
that was killed or died.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import IO, Any

from outkit_cli.sandbox.errors import RenderError

MiB = 1024 * 1024
_HEADER = 4
_START_TIMEOUT = 60.0  # a child's start-up (imports) on a loaded machine; not the deadline


class RenderStopped(RuntimeError):
    """The pool was closed (the sandbox is stopping) before the render finished."""


@dataclass(frozen=True)
class RenderLimits:
    """Bounds on rendering one message (all of its parts, with CSS inlining).

    seconds: wall-clock deadline, after which the render process is killed.
    memory: address-space limit of the render process, in bytes (RLIMIT_AS).
    output: the most characters one rendered part (HTML, text, subject) may have.
    """

    seconds: float = 5.0
    memory: int = 512 * MiB
    output: int = 10 * MiB


class RenderPool:
    """Renders messages' parts in child processes (see the module docstring)."""

    def __init__(self, limits: RenderLimits | None = None, size: int = 2) -> None:
        self.limits = limits or RenderLimits()
        self._size = size
        self._idle: list[_Child] = []
        self._busy: set[_Child] = set()
        self._count = 0
        self._cond = threading.Condition()
        self._closed = False

    def warm_up(self) -> None:
        """Start one render process now, so that the first message does not wait for it."""
        # on failure the first render tries again and reports it
        with contextlib.suppress(OSError, RuntimeError):
            self._release(self._acquire(), healthy=True)

    def render(self, job: dict[str, Any]) -> dict[str, str]:
        """Render ``job`` = {"data": {...}, "parts": [{"name", "source", "html", "what",
        "css"}, ...]}; returns {name: rendered text}.

        Raises RenderError for the template's failures and for every limit (the message
        names it), RuntimeError when no render process could be started or talked to.
        """
        frame = _frame(job)
        child = self._acquire()
        healthy = False
        try:
            answer = child.run(frame, self.limits)
            healthy = not answer.get("fatal")
        finally:
            self._release(child, healthy=healthy)
        if self._closed and "error" in answer:
            raise RenderStopped("the sandbox stopped while rendering")
        if "error" in answer:
            raise RenderError(str(answer["error"]))
        return dict(answer["parts"])

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, busy = self._idle, list(self._busy)
            self._idle = []
            self._cond.notify_all()
        for child in idle:
            child.stop()
        for child in busy:
            # only killed here: the thread rendering with it still reads its pipe, and
            # closes it in _release (closing it under that thread could even hand the
            # descriptor number to another file)
            child.kill()

    def _acquire(self) -> _Child:
        with self._cond:
            while True:
                if self._closed:
                    raise RenderStopped("the sandbox is stopping")
                if self._idle:
                    child = self._idle.pop()
                    self._busy.add(child)
                    return child
                if self._count < self._size:
                    self._count += 1
                    break
                self._cond.wait()
        try:
            child = _Child.start(self.limits)
        except BaseException:
            with self._cond:
                self._count -= 1
                self._cond.notify()
            raise
        with self._cond:
            closed = self._closed
            if closed:
                self._count -= 1
            else:
                self._busy.add(child)
        if closed:  # closed while it started: close() could not see it to kill it
            child.stop()
            raise RenderStopped("the sandbox is stopping")
        return child

    def _release(self, child: _Child, *, healthy: bool) -> None:
        with self._cond:
            self._busy.discard(child)
            keep = healthy and not self._closed
            if keep:
                self._idle.append(child)
            else:
                self._count -= 1
            self._cond.notify()
        if not keep:
            child.stop()


def _frame(obj: Any) -> bytes:
    body = json.dumps(obj, ensure_ascii=False).encode("utf-8", "surrogatepass")
    return len(body).to_bytes(_HEADER, "big") + body


class _Child:
    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc

    @classmethod
    def start(cls, limits: RenderLimits) -> _Child:
        env = dict(os.environ)
        env["OUTKIT_RENDER_LIMITS"] = json.dumps(
            {"seconds": limits.seconds, "memory": limits.memory, "output": limits.output}
        )
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "outkit_cli.sandbox.render_pool"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=env,
            )
        except OSError as exc:
            raise RuntimeError(f"the render process could not start: {exc}") from None
        child = cls(proc)
        ready = child._read(time.monotonic() + _START_TIMEOUT)
        if ready != b"ready":
            child.stop()
            raise RuntimeError("the render process did not start (see `python -m "
                               "outkit_cli.sandbox.render_pool`)")  # fmt: skip
        return child

    def run(self, frame: bytes, limits: RenderLimits) -> dict[str, Any]:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(frame)
            self.proc.stdin.flush()
        except OSError:
            return {"error": _ended(self.proc, limits), "fatal": True}
        answer = self._read(time.monotonic() + limits.seconds)
        if answer is None:
            if self.proc.poll() is None:
                return {
                    "error": f"rendering took longer than the limit of {limits.seconds:g} s "
                    "(a template looping over too much data?)",
                    "fatal": True,
                }
            return {"error": _ended(self.proc, limits), "fatal": True}
        result: dict[str, Any] = json.loads(answer)
        return result

    def _read(self, deadline: float) -> bytes | None:
        """One frame from the child, or None if it did not come by ``deadline`` / EOF."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        # The child writes one frame per job and then waits: the first read takes the
        # header and, nearly always, the whole answer (one select and one read per render
        # instead of two of each; each gives up the GIL to the HTTP threads).
        first = _read_some(fd, 1 << 16, deadline)
        if first is None:
            return None
        if len(first) < _HEADER:
            rest = _read_exactly(fd, _HEADER - len(first), deadline)
            if rest is None:
                return None
            first += rest
        size = int.from_bytes(first[:_HEADER], "big")
        body = first[_HEADER:]
        if len(body) > size:
            return None  # more than one frame: not our child's protocol, it is replaced
        if len(body) < size:
            more = _read_exactly(fd, size - len(body), deadline)
            if more is None:
                return None
            body += more
        return body

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.kill()

    def stop(self) -> None:
        self.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


def _read_some(fd: int, n: int, deadline: float) -> bytes | None:
    """Up to `n` bytes, as soon as any come; None at the deadline or EOF."""
    remaining = deadline - time.monotonic()
    if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
        return None
    return os.read(fd, n) or None


def _read_exactly(fd: int, n: int, deadline: float) -> bytes | None:
    chunks: list[bytes] = []
    while n:
        chunk = _read_some(fd, min(n, 1 << 20), deadline)
        if chunk is None:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _ended(proc: subprocess.Popen[bytes], limits: RenderLimits) -> str:
    code = proc.wait()
    how = f"signal {-code}" if code < 0 else f"exit status {code}"
    return (
        f"the render process ended ({how}) while rendering: over the memory limit of "
        f"{limits.memory // MiB} MiB?"
    )


# -- the child ---------------------------------------------------------------------------


def _limit_self(limits: RenderLimits) -> None:
    import resource

    for name, value in (("RLIMIT_AS", limits.memory), ("RLIMIT_FSIZE", 0), ("RLIMIT_CORE", 0)):
        if hasattr(resource, name):
            # e.g. RLIMIT_AS is refused on macOS; the deadline still holds
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(getattr(resource, name), (value, value))


def _cpu_backstop(seconds: float) -> None:
    # if the parent dies mid-render nobody kills this process on the deadline: SIGXCPU does
    import resource

    used = resource.getrusage(resource.RUSAGE_SELF)
    spent = int(used.ru_utime + used.ru_stime)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CPU, (spent + int(seconds) + 2, resource.RLIM_INFINITY))


def _read_job(stream: IO[bytes]) -> bytes | None:
    header = stream.read(_HEADER)
    if len(header) < _HEADER:
        return None
    body = stream.read(int.from_bytes(header, "big"))
    return body if len(body) == int.from_bytes(header, "big") else None


def child_main() -> None:
    """The render process: answer jobs from stdin until it closes."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the server, which stops us
    out = os.fdopen(os.dup(1), "wb")
    # nothing the engine might print may corrupt the frames on stdout
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    raw = json.loads(os.environ.get("OUTKIT_RENDER_LIMITS") or "{}")
    limits = RenderLimits(**raw)

    from outkit_cli.sandbox.affinity import restore_cpus
    from outkit_cli.sandbox.render import render_parts

    restore_cpus()  # a pinned server's CPU is for the server (affinity.py)
    _limit_self(limits)
    out.write(len(b"ready").to_bytes(_HEADER, "big") + b"ready")
    out.flush()
    stdin = sys.stdin.buffer
    while True:
        job = _read_job(stdin)
        if job is None:
            return
        _cpu_backstop(limits.seconds)
        answer: dict[str, Any]
        try:
            answer = {"parts": render_parts(json.loads(job), max_output=limits.output)}
        except RenderError as exc:
            answer = {"error": str(exc)}
        except MemoryError:
            answer = {
                "error": f"rendering needed more memory than the limit of "
                f"{limits.memory // MiB} MiB",
                "fatal": True,
            }
        except Exception as exc:  # never leave the parent without an answer
            answer = {"error": f"rendering failed: {type(exc).__name__}: {exc}", "fatal": True}
        try:
            frame = _frame(answer)
        except MemoryError:
            frame = _frame({"error": "the rendered message is too large", "fatal": True})
        out.write(frame)
        out.flush()


if __name__ == "__main__":
    child_main()
