"""Isolation for every test: a temp config, temp user dirs, no colour, fixed width.

No test may read or write the real user config or data dir, and no OUTKIT_* variable from
the developer's shell may leak in.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["tests.sandbox_fixture", "tests.browser"]


# proxies and CA bundles of the machine running the suite must not steer its requests
NETWORK_ENV = {"HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY", "REQUESTS_CA_BUNDLE",
               "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR"}  # fmt: skip


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith("OUTKIT_") or name.upper() in NETWORK_ENV or name == "NO_COLOR":
            monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    config = tmp_path / "config" / "config.toml"
    monkeypatch.setenv("OUTKIT_CONFIG", str(config))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "100")
    return config


@pytest.fixture
def config_file(isolated_env: Path) -> Path:
    """The per-test config file path (not created until something writes it)."""
    return isolated_env


@pytest.fixture(scope="session")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost: (cert.pem, key.pem)."""
    import subprocess

    d = tmp_path_factory.mktemp("tls")
    key, crt = d / "key.pem", d / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
         "-keyout", str(key), "-out", str(crt)],
        check=True, capture_output=True,
    )  # fmt: skip
    return crt, key
