"""The config file is 0600 in a 0700 directory after every kind of write, and a loosened
file is reported by every command that reads it.

tests/test_config.py covers the first `save_profile` and `keys default` on a loosened
file; here every writing command is covered (keys add, add again, remove, default,
`serve --init-profile`), under a permissive umask too, plus the warning for each way
of loosening the file.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import run
from tests.sandbox_fixture import Sandbox

ADD = ("--key", "k", "--passphrase", "p", "--secret", "s", "--api-url", "http://127.0.0.1:9/v1")
WRITES = {
    "keys add": ("keys", "add", "b", *ADD),
    "keys add (replace)": ("keys", "add", "a", *ADD, "--project", "demo", "--force"),
    "keys add --default": ("keys", "add", "c", *ADD, "--default"),
    "keys remove": ("keys", "remove", "a", "--yes"),
    "keys default": ("keys", "default", "a"),
}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def assert_private(config: Path) -> None:
    assert mode(config) == 0o600, oct(mode(config))
    assert mode(config.parent) == 0o700, oct(mode(config.parent))
    lock = config.with_name(config.name + ".lock")
    if lock.exists():
        assert mode(lock) == 0o600
    # no temp file left behind, readable or not
    assert {p.name for p in config.parent.iterdir()} <= {config.name, lock.name}


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    # files and directories would be created 0666/0777 if outkit relied on the umask
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.parametrize("name", list(WRITES))
def test_every_write_leaves_0600_in_0700(
    config_file: Path, name: str, permissive_umask: None
) -> None:
    assert run("keys", "add", "a", *ADD).exit_code == 0  # creates the dir and the file
    assert_private(config_file)
    result = run(*WRITES[name])
    assert result.exit_code == 0, result
    assert_private(config_file)


@pytest.mark.parametrize("name", list(WRITES))
@pytest.mark.parametrize("loose", [0o644, 0o640, 0o604])
def test_a_write_on_a_loosened_file_warns_and_tightens_it(
    config_file: Path, name: str, loose: int
) -> None:
    assert run("keys", "add", "a", *ADD).exit_code == 0
    config_file.chmod(loose)
    result = run(*WRITES[name])
    assert result.exit_code == 0, result
    warning = (
        f"warning: {config_file} is readable by other users (mode {loose:o}); "
        f"run: chmod 600 {config_file}"
    )
    assert warning in result.stderr.splitlines()
    assert_private(config_file)
    assert "warning" not in run("keys", "list").stderr  # tightened: quiet from now on


READERS = {
    "keys list": ("keys", "list"),
    "keys show": ("keys", "show", "a"),
    "sign": ("-p", "a", "sign", "GET", "/v1/messages", "--timestamp", "1"),
    "send --dry-run": ("send", "--dry-run", "--to", "a@b.co", "--text-body", "x"),
    "get": ("get", "some-id", "--retries", "0", "--timeout", "1"),
    "keys test": ("keys", "test", "--retries", "0", "--timeout", "1"),
}


@pytest.mark.parametrize("name", list(READERS))
def test_every_reader_warns_once_about_a_loosened_file_and_leaves_it(
    config_file: Path, name: str
) -> None:
    assert run("keys", "add", "a", *ADD, "--project", "demo").exit_code == 0
    config_file.chmod(0o644)
    result = run(*READERS[name])
    assert "Traceback" not in result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert warnings == [
        f"warning: {config_file} is readable by other users (mode 644); "
        f"run: chmod 600 {config_file}"
    ], result
    assert mode(config_file) == 0o644  # reading never changes the file


def test_only_group_or_other_bits_count(config_file: Path) -> None:
    assert run("keys", "add", "a", *ADD).exit_code == 0
    for private in (0o600, 0o400, 0o700):
        config_file.chmod(private)
        assert "warning" not in run("keys", "list").stderr, oct(private)
    config_file.chmod(0o600)


def test_a_directory_outkit_did_not_create_keeps_its_mode(tmp_path: Path) -> None:
    # `--config ./shared/x.toml` in a directory that already exists (a project dir, /tmp):
    # the file is private, but outkit does not chmod a directory it did not make
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    config = shared / "outkit.toml"
    assert run("--config", str(config), "keys", "add", "a", *ADD).exit_code == 0
    assert mode(config) == 0o600
    assert mode(shared) == 0o755


def test_serve_init_profile_writes_0600_in_0700(
    start_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    config = tmp_path / "fresh" / "nested" / "config.toml"
    start_sandbox(extra_args=("--init-profile",), env={"OUTKIT_CONFIG": str(config)})
    assert_private(config)
    # a second profile into the same, now loosened, file: tightened again
    config.chmod(0o644)
    start_sandbox(extra_args=("--init-profile", "other"), env={"OUTKIT_CONFIG": str(config)})
    assert_private(config)
    assert "other" in config.read_text()


@pytest.mark.parametrize("name", [*WRITES, *READERS])
@pytest.mark.parametrize(("where", "loose"), [("file", 0o666), ("file", 0o620), ("dir", 0o777)])
def test_a_config_others_can_change_is_refused_with_the_fix(
    config_file: Path, name: str, where: str, loose: int
) -> None:
    # OpenSSH's rule: whoever can change the file can point our credentials at their server
    assert run("keys", "add", "a", *ADD).exit_code == 0
    target = config_file if where == "file" else config_file.parent
    before = config_file.read_bytes()
    target.chmod(loose)
    try:
        result = run(*(WRITES.get(name) or READERS[name]))
    finally:
        target.chmod(0o600 if where == "file" else 0o700)
    assert result.exit_code == 2, result
    assert result.stderr == (
        f"error: config {'file' if where == 'file' else 'directory'} {target} is writable by "
        f"other users (mode {loose:o}); refusing to use it: run: chmod go-w {target}\n"
    )
    assert config_file.read_bytes() == before


def test_a_first_profile_is_not_written_into_a_directory_others_can_write(
    tmp_path: Path,
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    config = shared / "outkit.toml"
    result = run("--config", str(config), "keys", "add", "a", *ADD)
    assert result.exit_code == 2, result
    assert "writable by other users" in result.stderr
    assert not config.exists()
