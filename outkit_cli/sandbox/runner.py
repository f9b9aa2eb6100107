"""Start and stop a sandbox: data dir, keys, app, bound server. Used by `outkit serve`."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from outkit_cli.netaddr import is_loopback, is_wildcard
from outkit_cli.sandbox.app import SandboxApp
from outkit_cli.sandbox.faults import Faults
from outkit_cli.sandbox.keys import ApiKey, load_or_create_keys
from outkit_cli.sandbox.server import SandboxServer, raise_descriptor_limit
from outkit_cli.sandbox.stopping import StopRequest
from outkit_cli.sandbox.storage import DEFAULT_MAX_STORAGE
from outkit_cli.sandbox.templates import Catalog, builtin_dir


def default_data_dir() -> Path:
    import platformdirs

    return platformdirs.user_data_path("outkit") / "sandbox"


def parse_hostport(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


def api_url(host: str, port: int) -> str:
    """The API base URL for clients on this machine, from the bound address: a wildcard
    (0.0.0.0, ::) is reached through the loopback address of its family, which the CLI
    accepts over plain http (netaddr.is_loopback)."""
    if is_wildcard(host):
        host = "::1" if ":" in host else "127.0.0.1"
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/v1"


@dataclass
class Running:
    app: SandboxApp
    server: SandboxServer
    keys: list[ApiKey]
    stop: StopRequest = field(default_factory=StopRequest)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return api_url(str(host), int(port))

    @property
    def inbox_url(self) -> str:
        """The browser inbox's root URL (the token, when one is required, is in
        `inbox_login`)."""
        assert self.app.inbox is not None
        return self.app.inbox.base_url

    @property
    def inbox_login(self) -> str | None:
        """How to sign in to the inbox (user and password), or None when it needs no token."""
        assert self.app.inbox is not None
        return self.app.inbox.login

    def signed_key(self) -> ApiKey:
        return next(k for k in self.keys if k.signed)

    def serve_until_stopped(self) -> None:
        """Serve (in a thread) until a stop is requested, then shut down cleanly."""
        thread = threading.Thread(target=self.server.serve_forever, name="http", daemon=True)
        thread.start()
        try:
            while not self.stop.requested:
                time.sleep(0.05)
        finally:
            self.server.shutdown()
            thread.join(15)  # the socket and the pool are closed only once it has stopped
            self.close()

    def close(self) -> None:
        self.server.server_close()
        self.app.close()


def start(
    *,
    host: str,
    port: int,
    data_dir: Path,
    templates: Path | None,
    faults: Faults,
    smtp: tuple[str, int] | None,
    log: Any = None,
    inbox_token: bool | None = None,
    max_storage: int | None = DEFAULT_MAX_STORAGE,
) -> Running:
    """Bind and start a sandbox. `inbox_token`: require a token for the browser inbox
    (None: only when `host` is not loopback)."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    keys = load_or_create_keys(data_dir)
    app = SandboxApp(
        data_dir=data_dir,
        keys=keys,
        catalog=Catalog(builtin_dir(), templates),
        faults=faults,
        smtp=smtp,
        log=log,
        max_storage=max_storage,
    )
    raise_descriptor_limit()
    try:
        server = SandboxServer((host, port), app)
    except BaseException:
        app.close()
        raise
    import secrets

    from outkit_cli.sandbox.inbox import Inbox

    running = Running(app=app, server=server, keys=keys)
    need_token = not is_loopback(host) if inbox_token is None else inbox_token
    app.inbox = Inbox(
        app, api_url=running.url, token=secrets.token_urlsafe(24) if need_token else None
    )
    app.start()
    return running
