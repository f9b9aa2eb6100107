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
