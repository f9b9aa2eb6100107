"""Terminal manners: the spinner leaves nothing behind, tables never wrap ids, keys or URLs,
one line where one line is asked for, one sandbox per data dir, config files as people
write them."""

from __future__ import annotations

import io
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest

from outkit_cli.config import save_profile
from outkit_cli.waiting import CLEAR_LINE, spinner
from tests.helpers import run, run_subprocess

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def test_spinner_clears_its_line_before_anything_else_is_printed() -> None:
    out = io.StringIO()
    with spinner("waiting for m-1", enabled=True, stream=out) as update:
        update("queued\x1b[2J")  # a status from the API: shown escaped, never acted on
        deadline = time.monotonic() + 60
        while out.getvalue().count(CLEAR_LINE) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)  # until the spinner thread has redrawn a few frames
    text = out.getvalue()
    assert text.endswith(CLEAR_LINE)
    frames = [f for f in text.split(CLEAR_LINE) if f]
    assert len(frames) >= 2
    for frame in frames:
        # every frame ends at column 0 and is one line: nothing runs on from it
        assert frame.endswith("\r") and "\n" not in frame
        assert re.fullmatch(r". waiting for m-1( \(queued\\x1b\[2J\))?\r", frame), frame
    assert "\x1b[2J" not in text


def test_spinner_clears_its_line_when_the_wait_fails() -> None:
    out = io.StringIO()
    try:
        with spinner("waiting", enabled=True, stream=out):
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    assert out.getvalue().endswith(CLEAR_LINE)


def test_no_spinner_without_a_terminal() -> None:
    out = io.StringIO()
    with spinner("waiting", enabled=False, stream=out) as update:
        update("x")
    assert out.getvalue() == ""


def test_a_config_file_with_a_byte_order_mark_is_read(config_file: Path) -> None:
    config_file.parent.mkdir(parents=True)
    config_file.write_bytes(
        b'\xef\xbb\xbfdefault_profile = "n"\r\n[profiles.n]\r\nkey = "k"\r\n'
        b'passphrase = "p"\r\nsecret = "s"\r\n'
    )  # as Notepad saves it
    config_file.chmod(0o600)
    result = run("keys", "show", "--field", "key")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "k\n", "")


def test_a_relative_xdg_config_home_is_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OUTKIT_CONFIG")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative-dir")
    result = run("keys", "add", "a", "--key", "k", "--passphrase", "p", "--secret", "s")
    assert result.exit_code == 0, result.stderr
    assert not (tmp_path / "relative-dir").exists()
    assert (Path(os.environ["HOME"]) / ".config" / "outkit" / "config.toml").exists()


def test_a_second_serve_on_one_data_dir_refuses_and_names_the_holder(
    start_sandbox: Any, config_file: Path
) -> None:
    first = start_sandbox()
    save_profile(config_file, "sandbox", {"key": "k", "passphrase": "p", "secret": "s",
                                          "api_url": first.url})  # fmt: skip
    before = config_file.read_bytes()
    second = run_subprocess(
        "serve", "--port", "0", "--data-dir", str(first.data_dir), "--init-profile",
        env={"OUTKIT_CONFIG": str(config_file)}, timeout=120,
    )  # fmt: skip
    assert second.exit_code == 2
    assert second.stdout == ""
    assert second.stderr == (
        f"error: data dir {first.data_dir} is in use by another outkit serve "
        f"(process {first.process.pid}); stop that one, or give this one another --data-dir\n"
    )
    assert config_file.read_bytes() == before  # the profile still points at the first
    assert first.request("GET", "/messages")[0] == 200  # and the first runs on


def test_the_data_dir_lock_goes_with_its_holder(start_sandbox: Any, tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = start_sandbox(data_dir=data)
    first.kill()  # SIGKILL: no chance to clean up, the kernel drops the lock
    again = start_sandbox(data_dir=data)
    assert again.request("GET", "/messages")[0] == 200


def test_keys_list_at_80_columns_never_cuts_keys_or_urls(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from outkit_cli.terminal import Terminal, use

    long_key = "AKIA" + "7" * 20
    long_url = "https://eu.outkit.example/v1"
    save_profile(config_file, "production-eu", {"key": long_key, "passphrase": "p",
                                                "secret": "s", "api_url": long_url})  # fmt: skip
    save_profile(config_file, "b", {"key": "k", "passphrase": "p", "secret": "s"})
    with use(Terminal(stdout_tty=True, stderr_tty=True, color=False, width=80)):
        result = run("keys", "list")
    assert result.exit_code == 0, result.stderr
    lines = [ANSI.sub("", line) for line in result.stdout.splitlines()]
    assert all(len(line) <= 80 for line in lines), lines
    row = next(line for line in lines if "production-eu" in line)
    assert long_key in row and long_url in row  # whole, on one line
    # the columns that gave way are named, not silently gone
    assert "left out to fit 80 columns" in result.stderr
    for heading in ("signed", "default"):
        assert (heading in lines[0]) != (heading in result.stderr), heading


def test_get_list_at_80_columns_names_the_column_it_leaves_out(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from outkit_cli.message_view import print_message_table
    from outkit_cli.terminal import Terminal, use

    rows = [{"id": f"6dc5b9a6-863a-4be2-bd58-8540f2d9120{n}", "status": "queued_for_delivery",
             "to": "someone.with.a.long.address@example.com", "subject": "Hello " * 10,
             "received_at": "2026-11-26T07:10:14.124334Z"} for n in range(3)]  # fmt: skip
    with use(Terminal(stdout_tty=True, stderr_tty=True, color=False, width=80)):
        print_message_table(rows)
    captured = capsys.readouterr()
    lines = [ANSI.sub("", line) for line in captured.out.splitlines()]
    assert all(len(line) <= 80 for line in lines)
    for row in rows:
        assert any(row["id"] in line and "queued_for_delivery" in line for line in lines)
    assert "RECEIVED (UTC) left out to fit 80 columns" in captured.err
    with use(Terminal(stdout_tty=True, stderr_tty=True, color=False, width=160)):
        print_message_table(rows)
    wide = capsys.readouterr()
    assert "2026-11-26 07:10:14" in wide.out and wide.err == ""


def test_fit_columns_shrinks_first_then_leaves_out_last_first() -> None:
    from outkit_cli.output import KEEP, OPTIONAL, SHRINK, fit_columns

    headings = ["ID", "TEXT", "A", "B"]
    cells = [["x" * 20, "y" * 40, "aaaa", "bbbb"]]
    rules = [KEEP, SHRINK, OPTIONAL, OPTIONAL]
    # natural width 20+40+4+4 and 3 per column less 1: 79
    assert fit_columns(headings, cells, rules, 79) == ([20, 40, 4, 4], [])
    assert fit_columns(headings, cells, rules, 60) == ([20, 21, 4, 4], [])
    assert fit_columns(headings, cells, rules, 38) == ([20, 13, 0, 0], [3, 2])
    # nothing left to leave out: the shrinkable column goes down to its heading's width
    assert fit_columns(headings, cells, rules, 30) == ([20, 5, 0, 0], [3, 2])
    # widths in terminal cells: a wide (CJK) id keeps all its cells
    assert fit_columns(["ID"], [["日本語"]], [KEEP], 80, measure=lambda t: 2 * len(t)) == (
        [6],
        [],
    )
    # KEEP columns alone wider than the terminal: never cut
    assert fit_columns(["ID"], [["x" * 50]], [KEEP], 20) == ([50], [])


def test_spinner_on_a_closed_terminal_ends_quietly() -> None:
    out = io.StringIO()
    out.close()  # the terminal went away (hung up): no thread traceback, no error
    with spinner("waiting", enabled=True, stream=out) as update:
        update("queued")


def test_a_utf16_config_file_is_named_as_such(config_file: Path) -> None:
    config_file.parent.mkdir(parents=True)
    config_file.write_bytes('[profiles.n]\nkey = "k"\n'.encode("utf-16"))
    config_file.chmod(0o600)
    result = run("keys", "list")
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: config file {config_file} is UTF-16; save it as UTF-8 (TOML is UTF-8 only)\n"
    )


def test_an_option_the_command_has_itself_keeps_its_meaning_after_the_name(
    config_file: Path,
) -> None:
    from outkit_cli.config import load_config

    base = ("keys", "add", "n", "--key", "k", "--passphrase", "p", "--secret", "s")
    # before the name, --api-url is the global one: this command does not use it
    assert run("--api-url", "http://127.0.0.1:1/v1", *base).exit_code == 0
    assert "api_url" not in load_config(config_file)["profiles"]["n"]
    # after `keys add` it is the profile's own API URL
    assert run(*base, "--api-url", "http://127.0.0.1:2/v1", "--force").exit_code == 0
    assert load_config(config_file)["profiles"]["n"]["api_url"] == "http://127.0.0.1:2/v1"


def test_a_lock_file_planted_as_a_symlink_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    victim = tmp_path / "someone-elses-file"
    (data / "serve.lock").symlink_to(victim)
    result = run_subprocess("serve", "--port", "0", "--data-dir", str(data), timeout=120)
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: cannot use data dir {data}: {data / 'serve.lock'}: it is a symbolic link "
        "(refused: it could point at another user's file)\n"
    )
    assert not victim.exists()
