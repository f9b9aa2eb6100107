"""Messages that help: each says what is wrong with what the user gave, in one line."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from outkit_cli.config import save_profile
from tests.helpers import run
from tests.sandbox_fixture import Sandbox


def _profile(config: Path, name: str, sandbox: Sandbox, **extra: str) -> None:
    values = {"key": sandbox.key, "passphrase": sandbox.passphrase, "secret": sandbox.secret,
              "api_url": sandbox.url, **extra}  # fmt: skip
    save_profile(config, name, values)


def test_api_errors_name_the_profile_and_api_url(config_file: Path, sandbox: Sandbox) -> None:
    _profile(config_file, "production", sandbox)
    result = run("-p", "production", "send", "--to", "a@example.com", "--template", "nope",
                 "--project", "demo")  # fmt: skip
    assert result.exit_code == 5
    (line,) = result.stderr.splitlines()
    assert line.endswith(f"; profile 'production' at {sandbox.url}"), line
    from_env = run("get", "00000000-0000-0000-0000-000000000000", env=sandbox.env())
    assert from_env.exit_code == 4
    assert f"credentials from the environment at {sandbox.url}" in from_env.stderr


def test_no_default_profile_lists_the_profiles(config_file: Path, sandbox: Sandbox) -> None:
    _profile(config_file, "b", sandbox)
    _profile(config_file, "c", sandbox)
    text = config_file.read_text()
    config_file.write_text(text.replace('default_profile = "b"\n', ""))  # none the default
    result = run("get")
    assert result.exit_code == 3
    assert result.stderr == (
        "error: no profile selected and no default profile (profiles: b, c): pass -p NAME, "
        "or set one with `outkit keys default NAME`\n"
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (("--text-body", ""), "error: nothing to send: the --text-body given is empty\n"),
        (("--html-body", ""), "error: nothing to send: the --html-body given is empty\n"),
    ],
)
def test_an_empty_body_is_called_empty(body: tuple[str, ...], message: str) -> None:
    result = run("send", "--to", "a@example.com", "--project", "demo", *body, "--dry-run")
    assert (result.exit_code, result.stderr) == (2, message)


def test_connection_error_reason_has_no_stray_parenthesis() -> None:
    from urllib3.connection import HTTPSConnection
    from urllib3.exceptions import MaxRetryError, NameResolutionError

    from outkit_cli.http.transport import reason

    # a failed DNS lookup as urllib3 reports it (built here: no lookup leaves this machine)
    dns = NameResolutionError(
        "api.outkit.io",
        HTTPSConnection("api.outkit.io"),
        socket.gaierror(-2, "Name or service not known"),
    )
    assert reason(dns) == "Name or service not known"
    assert reason(MaxRetryError(None, "/v1", dns)) == "Name or service not known"
    assert reason(OSError(111, "Connection refused")) == "Connection refused"
    assert reason(OSError("odd (parenthesised) text")) == "odd (parenthesised) text"


@pytest.mark.parametrize(
    ("api_url", "path", "hint"),
    [
        ("https://h.example/outkit/v1", "/v1/messages", "did you mean /outkit/v1/messages?"),
        ("https://h.example/outkit/v1", "/messages", "did you mean /outkit/v1/messages?"),
        ("https://api.outkit.io/v1", "/messages?limit=1", "did you mean /v1/messages?limit=1?"),
    ],
)
def test_the_path_prefix_hint_never_doubles_a_segment(api_url: str, path: str, hint: str) -> None:
    result = run("--api-url", api_url, "sign", "GET", path, "--secret", "s", "--timestamp", "1")
    assert result.exit_code == 0
    assert hint in result.stderr
    assert "/v1/v1" not in result.stderr


def test_sign_warns_about_a_path_that_is_sent_encoded() -> None:
    result = run("sign", "GET", "/v1/messages?x=order 42", "--secret", "s", "--timestamp", "1")
    assert result.exit_code == 0
    (line,) = result.stderr.splitlines()
    assert line.startswith("warning: ")
    assert "sign /v1/messages?x=order%2042 instead" in line
    encoded = run("sign", "GET", "/v1/messages?x=order%2042", "--secret", "s", "--timestamp", "1")
    assert encoded.stderr == ""
