"""`outkit keys test [NAME]`: one harmless signed request, against the sandbox and against
small loopback servers for what the sandbox cannot show (a skewed clock)."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

from outkit_cli.config import save_profile
from tests.helpers import run
from tests.sandbox_fixture import Sandbox
from tests.test_client import env_for, fake_api


def profile_for(box: Sandbox, **extra: object) -> dict:
    return {"key": box.key, "passphrase": box.passphrase, "secret": box.secret,
            "api_url": box.url, **extra}  # fmt: skip


def test_credentials_ok_from_environment(sandbox: Sandbox) -> None:
    result = run("keys", "test", env=sandbox.env())
    assert result.exit_code == 0, result.stderr
    assert re.search(r"^result\s+credentials OK$", result.stdout, re.M)
    assert re.search(r"^latency\s+\d+ ms$", result.stdout, re.M)
    assert re.search(r"^clock\s+in sync with the server", result.stdout, re.M)
    assert sandbox.secret not in result.output and sandbox.passphrase not in result.output


def test_named_profile_and_json(sandbox: Sandbox, config_file: Path) -> None:
    save_profile(config_file, "first", profile_for(sandbox, secret="wrong"))
    save_profile(config_file, "second", profile_for(sandbox))
    result = run("keys", "test", "second", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["profile"] == "second" and report["ok"] is True
    assert report["http_status"] == 404  # the probe id cannot exist
    assert report["latency_ms"] >= 0 and report["clock_ok"] is True
    assert sandbox.secret not in result.stdout

    rejected = run("keys", "test", "first")  # the default profile: wrong secret
    assert rejected.exit_code == 3
    assert rejected.stderr.startswith("error: authentication failed: ")
    assert "HTTP 401" in rejected.stderr


def test_named_profile_uses_its_own_credentials_only(sandbox: Sandbox, config_file: Path) -> None:
    """`keys test NAME` with production credentials in the environment sent them to profile
    NAME's URL (the sandbox's): NAME's own credentials are tested, the environment's never
    leave the machine for it."""
    save_profile(config_file, "sandbox", profile_for(sandbox))
    prod = {"OUTKIT_ACCESS_KEY": "prodkey", "OUTKIT_ACCESS_PASSPHRASE": "prod-pass",
            "OUTKIT_ACCESS_SECRET": "prod-secret", "OUTKIT_PROFILE": "other"}  # fmt: skip
    result = run("-v", "keys", "test", "sandbox", "--json", env=prod)
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["profile"], report["key"]) == ("sandbox", sandbox.key)
    assert "prodkey" not in result.output and "prod-pass" not in result.output
    # a profile without credentials of its own is not completed from the environment
    save_profile(config_file, "bare", {"api_url": sandbox.url})
    bare = run("keys", "test", "bare", env=prod)
    assert bare.exit_code == 3
    assert "missing key, passphrase, secret" in bare.stderr


def test_unknown_profile_exit_2(sandbox: Sandbox, config_file: Path) -> None:
    save_profile(config_file, "only", profile_for(sandbox))
    result = run("keys", "test", "nope")
    assert result.exit_code == 2
    assert "unknown profile 'nope'" in result.stderr and "only" in result.stderr


def test_unreachable_exit_8() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = run("keys", "test", "--retries", "0", env=env_for(f"http://127.0.0.1:{port}/v1"))
    assert result.exit_code == 8
    assert f"cannot connect to 127.0.0.1:{port}" in result.stderr


def test_clock_skew_is_reported() -> None:
    not_found = (404, {}, {"error": {"message": "no such message", "code": "not_found"}})
    with fake_api(not_found, date_offset=3600) as (url, seen):
        result = run("keys", "test", env=env_for(url))
        as_json = run("keys", "test", "--json", env=env_for(url))
    assert result.exit_code == 0
    assert "credentials OK" in result.stdout
    assert "your clock is 60.0 min behind the server's" in result.stdout
    assert seen[0]["path"] == "/v1/messages/00000000-0000-0000-0000-000000000000"
    report = json.loads(as_json.stdout)
    assert report["clock_ok"] is False and report["clock_skew_s"] > 3500
