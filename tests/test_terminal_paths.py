"""Paths and file names never drive the terminal: every line naming a file the user gave
(a batch file, --journal, --results, --config, --message-file, --attach, a data dir, the
cache dir of `get --open`) shows its controls escaped. `send --batch` on a file named
x<OSC>0;PWN<BEL><CSI>2J.csv printed the summary's `journal PATH` raw: it retitled the
window and cleared the screen (attacker trial). Test the class: each path-naming line of
each command, success and error, with such a name in the directory."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from outkit_cli.terminal import Terminal, use
from tests.batch_helpers import DEMO, people, write_csv
from tests.fake_api import fake_api
from tests.helpers import Result, run
from tests.sandbox_fixture import Sandbox

# a file name may hold anything but '/' and NUL
NAME = "x\x1b]0;PWN\x07\x1b[2J\x1b[31m\u202eevil\u202c\x9b1m\x08\r\x7f"
# the name's own controls (a progress bar on a terminal draws escapes of its own)
MARKERS = ["\x1b]0;", "\x07", "\x1b[2J", "\x1b[31m", "\u202e", "\x9b", "\x08", "\r\x7f"]


def assert_clean(result: Result | str, where: str) -> None:
    text = result if isinstance(result, str) else result.stdout + result.stderr
    found = [m for m in MARKERS if m in text]
    assert not found, f"{where} carries {found!r}: {text!r}"


def on_tty(*args: str, env: dict[str, str]) -> Result:
    with use(Terminal(stdout_tty=True, stderr_tty=True, width=200)):
        return run(*args, env=env)


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    directory = tmp_path / NAME
    directory.mkdir()
    return directory


def test_batch_paths_in_the_summary_and_errors(sandbox: Sandbox, hostile: Path) -> None:
    tag = f"tp-{uuid.uuid4().hex[:8]}"
    src = write_csv(hostile / f"{NAME}.csv", people(2, tag))
    env = sandbox.env()
    ran = on_tty("send", "--batch", str(src), *DEMO, env=env)
    assert ran.exit_code == 0, ran.stderr
    assert "journal " in ran.stderr and "\\x1b]0;PWN\\x07" in ran.stderr  # named, escaped
    assert_clean(ran, "summary")
    cases = {
        "--journal and --results": ("--journal", str(hostile / f"j{NAME}"),
                                    "--results", str(hostile / f"r{NAME}")),
        "a rerun": (),
        "--dry-run": ("--dry-run",),
        "--results a directory": ("--results", str(hostile)),
        "--journal a directory": ("--journal", str(hostile)),
    }  # fmt: skip
    for case, extra in cases.items():
        ran = on_tty("send", "--batch", str(src), *DEMO, *extra, env=env)
        assert_clean(ran, case)
    missing = on_tty("send", "--batch", str(hostile / f"m{NAME}.csv"), *DEMO, env=env)
    assert missing.exit_code == 2 and "does not exist" in missing.stderr
    assert_clean(missing, "a missing batch file")
    journal = Path(str(src) + ".outkit-journal")
    journal.write_text(journal.read_text() + '{"type": "pending", "rows": [[1]]}\n')
    damaged = on_tty("send", "--batch", str(src), *DEMO, env=env)
    assert damaged.exit_code == 2 and "is damaged" in damaged.stderr
    assert_clean(damaged, "a damaged journal")


def test_file_options_of_send_and_the_config_path(sandbox: Sandbox, hostile: Path) -> None:
    env = sandbox.env()
    send = ("send", "--project", "demo", "--to", "a@example.com", "--text-body", "x")
    for case, args in {
        "--message-file": ("send", "--message-file", str(hostile / f"{NAME}.json")),
        "--attach": (*send, "--attach", str(hostile / f"{NAME}.pdf")),
        "--html-body-file": (*send, "--html-body-file", str(hostile)),
    }.items():
        ran = on_tty(*args, env=env)
        assert ran.exit_code == 2, (case, ran.stderr)
        assert_clean(ran, case)
    config = hostile / f"{NAME}.toml"
    added = on_tty("keys", "add", "hostile", "--api-url", sandbox.url, "--key", "k",
                   "--secret", "s", env={**env, "OUTKIT_CONFIG": str(config)})  # fmt: skip
    assert added.exit_code == 0, added.stderr
    assert "in " in added.stdout
    assert_clean(added, "keys add")
    config.chmod(0o644)  # readable by others: a warning naming it
    listed = on_tty("keys", "list", env={"OUTKIT_CONFIG": str(config)})
    assert_clean(listed, "a warning naming the config file")
    config.unlink()
    config.mkdir()
    broken = on_tty("keys", "list", env={"OUTKIT_CONFIG": str(config)})
    assert broken.exit_code != 0
    assert_clean(broken, "a config file that is a directory")


def test_get_open_names_its_file_escaped(hostile: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import webbrowser

    monkeypatch.setattr(webbrowser, "open", lambda url: False)  # no browser on this machine
    monkeypatch.setenv("XDG_CACHE_HOME", str(hostile))
    msg = {"id": "m1", "status": "delivered", "html_body": "<p>hi</p>", "done": True}

    def route(method: str, path: str, body: bytes) -> tuple[int, object]:
        return 200, {"data": msg}

    with fake_api(route) as api:
        ran = on_tty("get", "m1", "--open", env=api.env())
    assert ran.exit_code == 0, ran.stderr
    assert "the HTML is in " in ran.stderr
    assert_clean(ran, "get --open")


def test_serve_names_its_data_dir_escaped(start_sandbox: Any, hostile: Path) -> None:
    box = start_sandbox(data_dir=hostile / "data")
    deadline_text = "sandbox data in "
    deadline = time.monotonic() + 30
    while deadline_text not in box.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert deadline_text in box.log()
    assert_clean(box.log(), "serve's start lines")


@pytest.mark.parametrize(
    "text", [NAME, "plain", "it's", "a\\b'c", "\x1b[2J\u202e\u0085 é ✓", "", "\n\t\r"]
)
def test_shell_quote_is_one_word_that_prints_safely(text: str) -> None:
    import subprocess

    from outkit_cli.terminal import shell_quote

    quoted = shell_quote(text)
    assert_clean(quoted, "the quoted word")
    assert "\x1b" not in quoted and "\n" not in quoted
    out = subprocess.run(["bash", "-c", f"printf %s {quoted}"], capture_output=True, timeout=30,
                         env={"LC_ALL": "C.UTF-8"})  # fmt: skip
    assert out.stdout == text.encode("utf-8")


def test_curl_commands_quote_a_hostile_file_name(sandbox: Sandbox, hostile: Path) -> None:
    """`send --curl --attach FILE` printed the file name raw in its -F part (attacker pass
    on main); the command stays runnable: bash reads the same name back."""
    import subprocess

    attached = hostile / f"{NAME}.txt"
    attached.write_text("hi")
    ran = on_tty("send", "--project", "demo", "--to", "a@example.com", "--text-body", "x",
                 "--attach", str(attached), "--curl", env=sandbox.env())  # fmt: skip
    assert ran.exit_code == 0, ran.stderr
    assert_clean(ran, "send --curl")
    line = next(part for part in ran.stdout.split("\\\n") if "attachments[]=" in part)
    word = line.strip().removeprefix("-F ")
    out = subprocess.run(["bash", "-c", f"printf %s {word}"], capture_output=True, timeout=30,
                         env={"LC_ALL": "C.UTF-8"})  # fmt: skip
    value = out.stdout.decode("utf-8")
    assert value.startswith('attachments[]=@"') and str(attached).replace('"', '\\"') in value
