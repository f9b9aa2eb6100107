"""Run the real `outkit` entry point in-process or as a subprocess, capturing everything."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner

from outkit_cli.cli import main


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run(
    *args: str,
    input: str | bytes | None = None,
    env: Mapping[str, str | None] | None = None,
) -> Result:
    """`outkit ARGS` in this process, through the same `main()` the console script uses."""
    runner = CliRunner()
    with runner.isolation(input=input, env=env) as (out, err, _):
        code = 0
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        return Result(code, out.getvalue().decode(), err.getvalue().decode())


def run_subprocess(
    *args: str,
    input: str | bytes | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 60,
) -> Result:
    """`python -m outkit_cli ARGS` in a child process (for signals, TTY-less runs, timing)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    if isinstance(input, str):
        input = input.encode()
    proc = subprocess.run(
        [sys.executable, "-m", "outkit_cli", *args],
        input=input,
        capture_output=True,
        env=full_env,
        timeout=timeout,
    )
    return Result(proc.returncode, proc.stdout.decode(), proc.stderr.decode())


def run_on_pty(
    *args: str,
    answers: Sequence[tuple[str, str]] = (),
    env: Mapping[str, str | None] | None = None,
    timeout: float = 120,
) -> tuple[int, str]:
    """`python -m outkit_cli ARGS` with a pseudo-terminal as stdin, stdout, stderr and
    controlling terminal; each prompt in `answers` (text to wait for, line to type) is
    answered in turn. Returns (exit code, everything the terminal showed).

    Only for what a real terminal alone shows: input typed without echo, and the real
    streams seen as a TTY. Tests of what we do on a TTY set the terminal directly:
    ``with terminal.use(Terminal(stdout_tty=True)): run(...)``. `env` adds to this
    process's environment; a None value removes the variable.
    """
    import fcntl
    import select
    import termios
    import time

    full_env = dict(os.environ)
    for name, value in (env or {}).items():
        if value is None:
            full_env.pop(name, None)
        else:
            full_env[name] = value
    master, slave = os.openpty()

    def become_tty_session() -> None:
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(
        [sys.executable, "-m", "outkit_cli", *args],
        stdin=slave, stdout=slave, stderr=slave, env=full_env,
        preexec_fn=become_tty_session,
    )  # fmt: skip
    os.close(slave)
    seen = b""
    pending = list(answers)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if pending and pending[0][0].encode() in seen:
                seen += b"<<typed>>"  # so the same prompt text is not matched twice
                os.write(master, pending.pop(0)[1].encode() + b"\n")
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                seen += chunk
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=30)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return code, seen.decode(errors="replace")


def server_tls(cert: tuple[Path, Path]) -> ssl.SSLContext:
    """A server-side TLS context for a loopback test server, from the `cert` fixture."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*cert)
    return ctx


def drop_file_permission_override() -> None:
    """For a child's preexec_fn: root ignores directory permissions; drop that power so a
    read-only directory means read-only in tests run as root."""
    if os.geteuid() == 0:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
            if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def batch_row_ids(*send_args: str, env: Mapping[str, str | None] | None = None) -> dict[int, str]:
    """Row line -> the id_from_submitter `outkit send ARGS --dry-run` gives each valid row
    (a batch's rows are identified by their content: this is how a user finds them out)."""
    import json

    res = run(*send_args, "--dry-run", env=env)
    assert res.exit_code == 0, res.stderr
    return {r["row"]: r["id_from_submitter"] for r in map(json.loads, res.stdout.splitlines())}


def journal_text(*records: Mapping[str, object], input: str = "rows.csv") -> str:
    """A batch journal as a run writes it: header, one run record, then `records`."""
    import json

    head = [
        {"type": "batch", "version": 2, "input": input},
        {"type": "run", "pid": 1, "started": 0},
    ]
    return "".join(json.dumps(r) + "\n" for r in [*head, *records])
