"""Text from outside never drives the terminal (issue 12, part 1).

A hostile API (a loopback fake) puts ESC/CSI/OSC/OSC-8/BS/CR/C1/bidi into every field of
a message, every list row, every error message; a hostile config puts them into a profile
name. Every command and output mode runs with stdout/stderr as a pipe and as a terminal
(set on the terminal object, the way users' TTYs are seen), plus a real pseudo-terminal
run. Raw bytes are allowed only where the user asked for raw data on a pipe.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from outkit_cli.config import save_profile
from outkit_cli.terminal import Terminal, use
from tests.fake_api import FakeApi, fake_api
from tests.helpers import Result, run, run_on_pty

HOSTILE = (
    "\x1b]0;pwned\x07"  # OSC: retitle the window
    "\x1b[2J"  # CSI: clear the screen
    "\x1b[31mRED"  # SGR colour
    "\x1b]8;;http://evil.invalid/\x1b\\link\x1b]8;;\x1b\\"  # OSC 8 hyperlink
    "ab\x08\x08XY"  # backspaces overwrite
    "ok\rFAKE"  # carriage return overwrites the line
    "\u202eevil\u202c"  # bidi override
    "\u2066iso\u2069"  # bidi isolate
    "\x9b1m"  # C1 CSI
    "\x7f"
)
# what must never reach a terminal (rich's own styling escapes are not in this list)
MARKERS = ["\x1b]0;", "\x1b[2J", "\x1b[31m", "\x1b]8;", "\x08", "\r", "\u202e", "\u2066",
           "\x9b", "\x07", "\x7f"]  # fmt: skip

FIELDS = [
    "status_message", "type", "to", "from", "subject", "template", "project", "backend",
    "id_from_submitter", "received_at", "rendered_at", "delivered_at", "failed_at",
    "text_body", "html_body",
]  # fmt: skip


def message(msg_id: str, **extra: object) -> dict[str, object]:
    msg: dict[str, object] = {f: f"{f}:{HOSTILE}" for f in FIELDS}
    msg.update(id=msg_id, status="delivered", done=True, render_only=False, test=False)
    msg.update(extra)
    return msg


GOOD = "m" + HOSTILE
FAILED = message("failed" + HOSTILE, status="render_error" + HOSTILE)
FAILED["status"] = "render_error"


def route(method: str, path: str, body: bytes) -> tuple[int, object]:
    error = {"error": {"message": "server says " + HOSTILE, "code": "code" + HOSTILE}}
    if method == "POST":
        return 202, {"data": message(GOOD, status="received" + HOSTILE, done=False)}
    if path.startswith("/v1/messages?") or path == "/v1/messages":
        return 200, {"data": [message(GOOD), message("second" + HOSTILE)]}
    if "missing" in path:
        return 404, error
    if "broken" in path:
        return 500, error
    if "rejected" in path:
        return 422, error
    if "failed" in path:
        return 200, {"data": FAILED}
    return 200, {"data": message(GOOD)}


@pytest.fixture(scope="module")
def api() -> Iterator[FakeApi]:
    with fake_api(route) as server:
        yield server


Q = "m%1B"  # any id: the fake answers the hostile message

CASES: dict[str, tuple[str, ...]] = {
    "get": ("get", Q),
    "get several": ("get", Q, "x2"),
    "get list": ("get",),
    "get --json": ("get", Q, "--json"),
    "get list --json": ("get", "--json"),
    "get --field": ("get", Q, "--field", "subject", "--field", "id"),
    "get list --field": ("get", "--field", "to"),
    "get --body text": ("get", Q, "--body", "text"),
    "get --body html": ("get", Q, "--body", "html"),
    "get missing": ("get", Q, "missing"),
    "get server error": ("get", "broken"),
    "get rejected": ("get", "rejected"),
    "get --wait failed": ("get", "failed", "--wait"),
    "get -v missing": ("-v", "get", "missing"),
    "send": ("send", "--to", "a@example.com", "--project", "p", "--text-body", "x"),
    "send --json": ("send", "--to", "a@b.co", "--project", "p", "--text-body", "x", "--json"),
    "send -v": ("-v", "send", "--to", "a@example.com", "--project", "p", "--text-body", "x"),
}
RAW_ON_A_PIPE = {"get --field", "get list --field", "get --body text", "get --body html"}


def run_in(mode: str, *args: str, env: dict[str, str]) -> Result:
    if mode == "pipe":
        return run(*args, env=env)
    with use(Terminal(stdout_tty=True, stderr_tty=True, width=100)):
        return run(*args, env=env)


def assert_clean(text: str, where: str) -> None:
    found = [m for m in MARKERS if m in text]
    assert not found, f"{where} carries {found!r}: {text!r}"


@pytest.mark.parametrize("mode", ["pipe", "tty"])
@pytest.mark.parametrize("case", list(CASES))
def test_no_terminal_control_from_api_data(api: FakeApi, case: str, mode: str) -> None:
    result = run_in(mode, *CASES[case], env=api.env())
    assert result.exit_code != 1, result
    assert "Traceback" not in result.stderr
    assert_clean(result.stderr, "stderr")
    if mode == "pipe" and case in RAW_ON_A_PIPE:
        assert HOSTILE in result.stdout  # a script asked for the raw value: it gets it
    else:
        assert_clean(result.stdout, "stdout")
    for line in result.stderr.splitlines():
        assert line.startswith(("error: ", "warning: ", "debug: ", "note: ", "dry run")), line
    if "--json" in CASES[case]:
        value = json.loads(result.stdout)  # still JSON, and the same value
        first = value[0] if isinstance(value, list) else value
        assert first["subject"] == f"subject:{HOSTILE}"


def test_error_lines_show_the_escaped_text(api: FakeApi) -> None:
    result = run("get", "missing", env=api.env())
    assert result.exit_code == 4
    assert len(result.stderr.splitlines()) == 1
    assert "server says \\x1b]0;pwned\\x07\\x1b[2J" in result.stderr
    assert "\\u202eevil\\u202c" in result.stderr


@pytest.mark.parametrize("mode", ["pipe", "tty"])
@pytest.mark.parametrize(
    "args", [("keys", "list"), ("keys", "show"), ("keys", "list", "--field", "name")]
)
def test_no_terminal_control_from_a_profile_name(
    config_file: Path, mode: str, args: tuple[str, ...]
) -> None:
    save_profile(
        config_file, "p" + HOSTILE, {"key": "k" + HOSTILE, "api_url": "https://x.invalid/v1"}
    )
    result = run_in(mode, *args, env={})
    assert result.exit_code == 0, result
    assert_clean(result.stderr, "stderr")
    if mode == "pipe" and "--field" in args:
        assert HOSTILE in result.stdout
    else:
        assert_clean(result.stdout, "stdout")


@pytest.mark.parametrize(
    "args",
    [["get", Q], ["get"], ["get", Q, "--field", "subject"], ["get", Q, "--body", "text"],
     ["get", Q, "missing"]],
)  # fmt: skip
def test_a_real_terminal_gets_no_control_from_data(api: FakeApi, args: list[str]) -> None:
    code, output = run_on_pty(*args, env={**api.env(), "COLUMNS": "120"})
    assert code in (0, 4), output
    # the pty turns "\n" into "\r\n": only a CR that is not part of a line end counts
    assert_clean(output.replace("\r\n", "\n"), "the terminal")
    assert "pwned" in output  # the text is there, shown, not acted on
