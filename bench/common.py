"""What the benchmarks share: running a child for its own time and memory, starting a
server that prints its URL first, running code as installed, and writing the JSON report."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from outkit_cli.sandbox.process import (  # noqa: E402 - after the path is set
    START_TIMEOUT,
    StartError,
    start_url_process,
    stop_process,
)

OUTKIT = [sys.executable, "-m", "outkit_cli"]


def clean_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment without the developer's OUTKIT_* settings."""
    return {k: v for k, v in (os.environ if env is None else env).items()
            if not k.startswith("OUTKIT_")}  # fmt: skip


def compile_like_install(env: dict[str, str]) -> dict[str, str]:
    """Users run byte-compiled code (pip compiles at install). With PYTHONDONTWRITEBYTECODE
    set, as on some machines, every child would compile outkit_cli from source while its
    dependencies load from .pyc files: compile once, and let children use the result."""
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(ROOT / "outkit_cli")], env=env, check=True
    )
    return env


def regular_install(tmp: Path) -> Path:
    """Install this checkout as users get it: a wheel (not editable) into a fresh venv, byte
    compiled by pip. Returns that venv's ``bin`` directory (``python``, ``outkit``).

    An editable install adds a finder to every start-up and, with PYTHONDONTWRITEBYTECODE,
    compiles our modules on each run; neither is what a user of ``pipx install`` pays.
    """
    env = clean_env()
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    quiet = ["--quiet", "--disable-pip-version-check"]
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", *quiet, "--no-deps", "-w", str(tmp / "wheel"),
         str(ROOT)], env=env, check=True, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    subprocess.run([sys.executable, "-m", "venv", str(tmp / "venv")], env=env, check=True)
    bin_dir = tmp / "venv" / "bin"
    wheel = next((tmp / "wheel").glob("outkit_cli-*.whl"))
    subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "install", *quiet, str(wheel)],
        env=env, check=True, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return bin_dir


@dataclass
class Child:
    wall: float  # seconds
    cpu: float  # user + system seconds
    rss_mib: float  # this child's own peak
    returncode: int
    stdout: bytes
    stderr: bytes


def run_child(argv: list[str], env: Mapping[str, str], *, capture: bool = True) -> Child:
    """Run ``argv`` to the end; its own rusage comes from os.wait4 (RUSAGE_CHILDREN only
    ever reports the largest child so far). Output goes through temp files, so neither pipe
    can fill up and stall the child."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        sinks: tuple[IO[bytes] | int, IO[bytes] | int] = (
            (out, err) if capture else (subprocess.DEVNULL, subprocess.DEVNULL)
        )
        start = time.perf_counter()
        proc = subprocess.Popen(
            argv, env=dict(env), stdin=subprocess.DEVNULL, stdout=sinks[0], stderr=sinks[1]
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # already reaped by wait4
        out.seek(0)
        err.seek(0)
        # ru_maxrss is KiB on Linux, bytes on macOS
        rss = usage.ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)
        return Child(
            wall, usage.ru_utime + usage.ru_stime, rss, proc.returncode, out.read(), err.read()
        )


def start_server(
    args: list[str],
    *,
    stderr: IO[bytes] | int = subprocess.DEVNULL,
    env: Mapping[str, str] | None = None,
    timeout: float = START_TIMEOUT,
) -> tuple[subprocess.Popen[bytes], str]:
    """Start a server whose first stdout line is its base URL (`outkit serve` does that),
    waiting at most `timeout` seconds for it (the one helper, sandbox/process.py)."""
    try:
        return start_url_process(args, stderr=stderr, env=clean_env(env), timeout=timeout)
    except StartError as exc:
        raise SystemExit(f"server did not start: {exc}") from None


def stop(proc: subprocess.Popen[bytes]) -> None:
    stop_process(proc)


def write_report(path: Path, name: str, data: Mapping[str, Any]) -> None:
    """bench/results/NAME.json: the figures with when and where they were measured."""
    report = {
        "benchmark": name,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        **data,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
