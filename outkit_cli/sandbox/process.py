"""Start and stop a server process whose first stdout line is its base URL, as
`outkit serve` prints it: the one helper the tests, the benchmarks, the demo script and
the soak script use (none of them waits forever for a server that never comes up)."""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

START_TIMEOUT = 30.0  # seconds for the URL line; a loaded machine starts Python slowly
STOP_TIMEOUT = 10.0


class StartError(RuntimeError):
    """The server exited, printed something other than a URL, or took too long."""


def start_url_process(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    stderr: IO[Any] | int = subprocess.DEVNULL,
    timeout: float = START_TIMEOUT,
    preexec_fn: Callable[[], Any] | None = None,
) -> tuple[subprocess.Popen[bytes], str]:
    """Run `argv` and wait up to `timeout` seconds for its first stdout line, an http:// URL.

    Returns (the running process, the URL). Raises StartError (the process is killed
    first) when the line does not come in time or is not a URL; the server's stderr goes
    to `stderr` (a file, to read why). stdout stays a pipe the caller closes with
    `stop_process`.
    """
    proc = subprocess.Popen(
        list(argv),
        stdout=subprocess.PIPE,
        stderr=stderr,
        stdin=subprocess.DEVNULL,
        env=None if env is None else dict(env),
        preexec_fn=preexec_fn,
    )
    assert proc.stdout is not None
    line = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        fd = proc.stdout.fileno()
        while not line.endswith(b"\n") and len(line) < 4096:
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                break
            chunk = os.read(fd, 1)  # byte by byte: nothing after the line is taken from it
            if not chunk:
                break
            line += chunk
    url = line.decode("utf-8", "replace").strip()
    if not url.startswith("http://"):
        stop_process(proc, timeout=0)
        what = "no URL line" if not url else f"{url[:200]!r} instead of a URL"
        raise StartError(f"{' '.join(argv)[:300]}: {what} within {timeout:g} s")
    return proc, url


def stop_process(proc: subprocess.Popen[bytes], *, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM (a clean stop for `outkit serve`), then SIGKILL after `timeout` seconds;
    closes the stdout pipe. Safe to call twice."""
    if proc.poll() is None:
        if timeout > 0:
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout)
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    if proc.stdout is not None:
        proc.stdout.close()
