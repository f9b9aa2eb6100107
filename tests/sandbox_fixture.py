"""Pytest plugin: start real sandboxes (`outkit serve`) on free loopback ports.

`sandbox` (session scope) is shared by every test that needs no special options;
`start_sandbox(...)` starts a fresh one with options and stops it at teardown.
Each runs as a child process (`python -m outkit_cli serve --port 0`), with the test's
OUTKIT_* variables removed, its stderr drained into `<data_dir>/serve.log`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from outkit_cli.sandbox.process import StartError, start_url_process, stop_process

START_TIMEOUT = 30.0


@dataclass
class Sandbox:
    url: str  # http://127.0.0.1:PORT/v1
    data_dir: Path
    key: str
    passphrase: str
    secret: str  # the signed key's credentials above
    unsigned_key: str
    unsigned_passphrase: str
    unsigned_secret: str
    process: subprocess.Popen[bytes]
    _log: Any = field(default=None, repr=False)

    @property
    def inbox_url(self) -> str:
        """The browser inbox's root: http://127.0.0.1:PORT/"""
        return self.url.rsplit("/v1", 1)[0] + "/"

    def env(self) -> dict[str, str]:
        """Environment for `outkit` pointing at this sandbox with the signed key."""
        return {
            "OUTKIT_API_URL": self.url,
            "OUTKIT_ACCESS_KEY": self.key,
            "OUTKIT_ACCESS_PASSPHRASE": self.passphrase,
            "OUTKIT_ACCESS_SECRET": self.secret,
        }

    def outbox(self) -> Path:
        """The outbox Maildir root: delivered emails are files in `outbox()/"new"`,
        SMS are JSON lines in `outbox()/"sms.jsonl"`."""
        return self.data_dir / "outbox"

    def log(self) -> str:
        """What the sandbox wrote on stderr so far (one line per request)."""
        path = self.data_dir / "serve.log"
        return path.read_text("utf-8", "replace") if path.exists() else ""

    def request(
        self, method: str, path: str, body: bytes | str | dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        """A signed request with the standard library; path is relative to the base URL
        (e.g. "/messages"). Returns (status, parsed JSON)."""
        status, _, doc = self.exchange(method, path, body)
        return status, doc

    def exchange(
        self, method: str, path: str, body: bytes | str | dict[str, Any] | None = None
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        """As `request`, with the answer's headers: (status, headers by lower-case name,
        parsed JSON)."""
        import http.client
        from urllib.parse import urlsplit

        from outkit_cli.signing import auth_headers

        if isinstance(body, dict):
            body = json.dumps(body)
        raw = body.encode() if isinstance(body, str) else (body or b"")
        parts = urlsplit(self.url)
        target = parts.path + path
        headers = auth_headers(
            key=self.key,
            passphrase=self.passphrase,
            secret=self.secret,
            method=method,
            path=target,
            body=raw,
        )
        if raw:
            headers["Content-Type"] = "application/json"
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        try:
            conn.request(method, target, body=raw or None, headers=headers)
            resp = conn.getresponse()
            headers = {k.lower(): v for k, v in resp.getheaders()}
            return resp.status, headers, json.loads(resp.read())
        finally:
            conn.close()

    def messages(self) -> list[dict[str, Any]]:
        """Every stored message, newest first, through the API (riding out the 429s and
        503s a sandbox started with --rate-limit or --fail-rate answers to anyone)."""
        out: list[dict[str, Any]] = []
        path = "/messages?limit=10000"
        while True:  # pages: a list answer stops at about 8 MiB (Link: rel="next")
            for _ in range(50):
                status, headers, doc = self.exchange("GET", path)
                if status not in (429, 503):
                    break
                time.sleep(0.2)
            if status != 200:
                raise AssertionError(f"listing messages failed: {status} {doc}")
            out += doc["data"]
            link = headers.get("link")
            if not link:
                return out
            path = "/" + link[1 : link.index(">")].split("/", 2)[2]

    def wait_done(self, message_id: str, timeout: float = 30.0) -> dict[str, Any]:
        """Poll GET /messages/{id} until `done`; returns the message."""
        deadline = time.monotonic() + timeout
        while True:
            status, doc = self.request("GET", f"/messages/{message_id}")
            if status == 200 and doc["data"]["done"]:
                return doc["data"]
            if time.monotonic() > deadline:
                raise AssertionError(f"message {message_id} not done after {timeout}s: {doc}")
            time.sleep(0.02)

    def stop(self) -> None:
        """SIGTERM, then wait for a clean exit."""
        stop_process(self.process)
        self._close()

    def kill(self) -> None:
        """SIGKILL: no chance to clean up (for durability tests)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)
        self._close()

    def _close(self) -> None:
        if self.process.stdout is not None:
            self.process.stdout.close()
        if self._log is not None:
            self._log.close()
            self._log = None


def _interruptible() -> None:
    # A test run started in the background (`make test &`) ignores SIGINT, and children
    # inherit that; the sandbox honours it as a background job should. Tests send their
    # sandbox Ctrl-C on purpose, so it starts as a foreground process would.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _limited(nofile: int | None, fsize: int | None, cpus: set[int] | None = None) -> None:
    import resource

    _interruptible()
    if cpus is not None:
        os.sched_setaffinity(0, cpus)
    if nofile is not None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    if fsize is not None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTKIT_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def launch(
    data_dir: Path,
    *,
    rate_limit: float | None = None,
    fail_rate: float | None = None,
    latency: float | None = None,
    smtp: str | None = None,
    templates: Path | None = None,
    extra_args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    nofile: int | None = None,
    fsize: int | None = None,
    cpus: set[int] | None = None,
) -> Sandbox:
    """Start `outkit serve` on a free loopback port and wait for its URL line. `nofile`:
    the child's descriptor limit (soft and hard, as `ulimit -n` sets it); `fsize`: the
    largest file it may write, in bytes (`ulimit -f`; a stand-in for a full disk); `cpus`:
    the CPUs it may run on (as `taskset -c` sets them)."""
    args = [sys.executable, "-m", "outkit_cli", "serve", "--port", "0"]
    args += ["--data-dir", str(data_dir)]
    for flag, value in (
        ("--rate-limit", rate_limit),
        ("--fail-rate", fail_rate),
        ("--latency", latency),
        ("--smtp", smtp),
        ("--templates", templates),
    ):
        if value is not None:
            args += [flag, str(value)]
    args += list(extra_args)
    data_dir.mkdir(parents=True, exist_ok=True)
    log = (data_dir / "serve.log").open("ab")
    child_env = _child_env()
    child_env.update(env or {})
    try:
        proc, line = start_url_process(
            args,
            env=child_env,
            stderr=log,
            timeout=START_TIMEOUT,
            preexec_fn=lambda: _limited(nofile, fsize, cpus),
        )
    except StartError as exc:
        log.close()
        err = (data_dir / "serve.log").read_text("utf-8", "replace")
        raise RuntimeError(f"sandbox did not start ({exc}); its stderr:\n{err}") from None
    keys = json.loads((data_dir / "keys.json").read_text())["keys"]
    signed = next(k for k in keys if k["signed"])
    unsigned = next(k for k in keys if not k["signed"])
    return Sandbox(
        url=line,
        data_dir=data_dir,
        key=signed["key"],
        passphrase=signed["passphrase"],
        secret=signed["secret"],
        unsigned_key=unsigned["key"],
        unsigned_passphrase=unsigned["passphrase"],
        unsigned_secret=unsigned["secret"],
        process=proc,
        _log=log,
    )


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """One sandbox with default options, shared by the whole session."""
    box = launch(tmp_path_factory.mktemp("sandbox-shared"))
    yield box
    box.stop()


@pytest.fixture
def start_sandbox(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., Sandbox]]:
    """start_sandbox(rate_limit=5, fail_rate=1.0, latency=500, smtp="127.0.0.1:25",
    data_dir=path, templates=path) -> a fresh sandbox, stopped at teardown."""
    started: list[Sandbox] = []

    def start(data_dir: Path | None = None, **options: Any) -> Sandbox:
        box = launch(data_dir or tmp_path_factory.mktemp("sandbox"), **options)
        started.append(box)
        return box

    yield start
    for box in started:
        box.stop()
