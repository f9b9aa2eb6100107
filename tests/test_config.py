"""The config file: location, precedence, permissions, atomic locked writes, bad files."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from outkit_cli import config
from outkit_cli.config import (
    DEFAULT_API_URL,
    config_path,
    edit_config,
    load_config,
    resolve_settings,
    save_profile,
)
from outkit_cli.errors import ConfigError, UsageError
from outkit_cli.fsutil import write_atomic
from tests.helpers import drop_file_permission_override, run


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def outkit_process(*args: str, preexec_fn=None) -> subprocess.Popen[bytes]:  # type: ignore[no-untyped-def]
    return subprocess.Popen(
        [sys.executable, "-m", "outkit_cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=preexec_fn,
    )


# --- where the file is ----------------------------------------------------------------------


def test_config_path_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert config_path(tmp_path / "explicit.toml") == tmp_path / "explicit.toml"
    assert config_path() == Path(os.environ["OUTKIT_CONFIG"])
    monkeypatch.delenv("OUTKIT_CONFIG")
    # platformdirs: the user config dir, which the test isolation points into a temp HOME
    expected = Path(os.environ["XDG_CONFIG_HOME"]) / "outkit" / "config.toml"
    assert config_path() == expected


@pytest.mark.parametrize("xdg", [None, "", "  ", "/somewhere/else"])
def test_default_path_agrees_with_platformdirs(
    monkeypatch: pytest.MonkeyPatch, xdg: str | None
) -> None:
    import platformdirs

    if xdg is None:
        monkeypatch.delenv("XDG_CONFIG_HOME")
    else:
        monkeypatch.setenv("XDG_CONFIG_HOME", xdg)
    expected = platformdirs.user_config_path("outkit") / "config.toml"
    assert config.default_config_path() == expected


def test_config_option_wins_over_the_environment(tmp_path: Path, config_file: Path) -> None:
    other = tmp_path / "other" / "c.toml"
    result = run("--config", str(other), "keys", "add", "x", "--key", "k", "--passphrase", "p",
                 "--secret", "s")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert other.exists() and not config_file.exists()


def test_default_location_is_used_without_config_or_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OUTKIT_CONFIG")
    result = run("keys", "add", "x", "--key", "k", "--passphrase", "p", "--secret", "s")
    assert result.exit_code == 0, result.stderr
    expected = Path(os.environ["XDG_CONFIG_HOME"]) / "outkit" / "config.toml"
    assert load_config(expected)["profiles"]["x"]["key"] == "k"


# --- permissions and atomic writes ----------------------------------------------------------


def test_created_0600_in_a_0700_directory(config_file: Path) -> None:
    assert not config_file.parent.exists()
    save_profile(config_file, "a", {"key": "k", "passphrase": "p", "secret": "s"})
    assert mode(config_file) == 0o600
    assert mode(config_file.parent) == 0o700
    # the lock file beside it holds nothing, but is private too
    assert mode(config_file.with_name(config_file.name + ".lock")) == 0o600


def test_rewrites_stay_0600_and_tighten_a_loosened_file(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save_profile(config_file, "a", {"key": "k"})
    config_file.chmod(0o644)
    result = run("keys", "list")
    assert result.exit_code == 0
    assert result.stderr == (
        f"warning: {config_file} is readable by other users (mode 644); "
        f"run: chmod 600 {config_file}\n"
    )
    assert run("keys", "default", "a").exit_code == 0
    assert mode(config_file) == 0o600
    quiet = run("keys", "list")
    assert quiet.stderr == ""


def test_write_atomic_replaces_the_file_and_leaves_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "dir" / "config.toml"
    write_atomic(path, b"a = 1\n")
    first_inode = path.stat().st_ino
    write_atomic(path, b"a = 2\n")
    # a new file moved into place, not the old one rewritten in place
    assert path.stat().st_ino != first_inode
    assert path.read_bytes() == b"a = 2\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["config.toml"]


def test_a_symlinked_config_stays_a_symlink(tmp_path: Path, config_file: Path) -> None:
    real = tmp_path / "dotfiles" / "outkit.toml"
    real.parent.mkdir()
    real.write_text('[profiles.a]\nkey = "k"\n')
    real.chmod(0o600)
    config_file.parent.mkdir(mode=0o700)
    config_file.symlink_to(real)
    assert run("keys", "default", "a").exit_code == 0
    assert config_file.is_symlink()
    assert load_config(real)["default_profile"] == "a"


def test_unknown_profile_keys_survive_a_write(config_file: Path) -> None:
    config_file.parent.mkdir(mode=0o700)
    config_file.write_text('[profiles.a]\nkey = "k"\nfuture_option = [1, 2]\n')
    run("keys", "add", "b", "--key", "k", "--passphrase", "p", "--secret", "s")
    assert load_config(config_file)["profiles"]["a"]["future_option"] == [1, 2]


# --- files that cannot be used --------------------------------------------------------------

BROKEN = b'default_profile = "a"\n\n[profiles.a]\nkey = "k\n'


@pytest.mark.parametrize(
    "args",
    [
        ("keys", "list"),
        ("keys", "show", "a"),
        ("keys", "add", "b", "--key", "k", "--passphrase", "p", "--secret", "s"),
        ("keys", "remove", "a", "--yes"),
        ("keys", "default", "a"),
        ("sign", "GET", "/v1/messages", "--secret", "s"),
        ("keys", "test"),
        ("get", "some-id"),
        ("send", "--to", "a@example.com", "--project", "p", "--text-body", "x", "--dry-run"),
    ],
)
def test_a_file_that_does_not_parse_is_reported_and_never_overwritten(
    config_file: Path, args: tuple[str, ...]
) -> None:
    config_file.parent.mkdir(mode=0o700)
    config_file.write_bytes(BROKEN)
    config_file.chmod(0o600)
    result = run(*args)
    assert result.exit_code == 2
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: config file {config_file} does not parse")
    assert "line 4" in line
    assert config_file.read_bytes() == BROKEN
    assert sorted(p.name for p in config_file.parent.iterdir() if p.suffix != ".lock") == [
        config_file.name
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"profiles = 3\n", "'profiles' must be a table"),
        (b"default_profile = 1\n", "'default_profile' must be a string"),
        (b"[profiles]\na = 1\n", "[profiles.a] must be a table"),
        (b"[profiles.a]\nsigned = 'yes'\n", "profiles.a.signed must be bool"),
        (b"[profiles.a]\nretries = true\n", "profiles.a.retries must be int"),
        (b"[profiles.a]\ntimeout = 'x'\n", "profiles.a.timeout must be float"),
        (b"[profiles.a]\nkey = 'caf\xe9'\n", "is not valid UTF-8"),
    ],
)
def test_wrong_types_are_usage_errors(config_file: Path, content: bytes, message: str) -> None:
    config_file.parent.mkdir(mode=0o700)
    config_file.write_bytes(content)
    config_file.chmod(0o600)
    result = run("keys", "add", "b", "--key", "k", "--passphrase", "p", "--secret", "s")
    assert result.exit_code == 2
    assert message in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert config_file.read_bytes() == content


def test_a_directory_in_place_of_the_file(config_file: Path) -> None:
    config_file.mkdir(parents=True)
    result = run("keys", "list")
    assert result.exit_code == 2
    assert "is a directory" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("keys", "add", "b", "--key", "k", "--passphrase", "p", "--secret", "s"),
        ("keys", "default", "a"),
        ("keys", "remove", "a", "--yes"),
    ],
)
def test_read_only_config_dir(config_file: Path, args: tuple[str, ...]) -> None:
    save_profile(config_file, "a", {"key": "k", "passphrase": "p", "secret": "s"})
    before = config_file.read_bytes()
    (config_file.parent / (config_file.name + ".lock")).unlink()
    config_file.parent.chmod(0o500)
    try:
        proc = outkit_process(*args, preexec_fn=drop_file_permission_override)
        out, err = proc.communicate(timeout=30)
    finally:
        config_file.parent.chmod(0o700)
    assert proc.returncode == 2
    assert out == b""
    lines = err.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: cannot write config file {config_file}")
    assert "Permission denied" in lines[0]
    assert config_file.read_bytes() == before
    assert sorted(p.name for p in config_file.parent.iterdir()) == [config_file.name]


# --- concurrent writers ---------------------------------------------------------------------


def test_concurrent_adds_all_land(config_file: Path) -> None:
    names = [f"p{i}" for i in range(6)]
    procs = [
        outkit_process("keys", "add", n, "--key", n, "--passphrase", "p", "--secret", "s")
        for n in names
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    data = load_config(config_file)
    assert sorted(data["profiles"]) == names
    assert data["default_profile"] in names


def test_a_writer_waits_for_the_lock(config_file: Path) -> None:
    from filelock import FileLock

    save_profile(config_file, "a", {"key": "k"})
    lock = FileLock(str(config_file.with_name(config_file.name + ".lock")))
    with lock:
        proc = outkit_process("keys", "add", "b", "--key", "k", "--passphrase", "p",
                              "--secret", "s")  # fmt: skip
        time.sleep(1.0)
        assert proc.poll() is None  # still waiting
        assert "b" not in load_config(config_file)["profiles"]
    proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert sorted(load_config(config_file)["profiles"]) == ["a", "b"]


# --- precedence: flag > environment > profile > default -------------------------------------


def _profile(path: Path) -> None:
    save_profile(
        path,
        "prod",
        {
            "key": "pk",
            "passphrase": "pp",
            "secret": "ps",
            "api_url": "http://profile.example/v1",
            "timeout": 5,
            "retries": 1,
            "project": "acme",
            "from": "A <a@b.c>",
            "signed": False,
        },
    )


def test_profile_values_over_defaults(config_file: Path) -> None:
    _profile(config_file)
    s = resolve_settings(config_file, env={})
    assert (s.profile, s.key, s.passphrase, s.secret) == ("prod", "pk", "pp", "ps")
    assert (s.api_url, s.timeout, s.retries) == ("http://profile.example/v1", 5, 1)
    assert (s.project, s.from_, s.signed) == ("acme", "A <a@b.c>", False)
    assert s.sources["key"] == "profile prod"


def test_environment_over_profile(config_file: Path) -> None:
    _profile(config_file)
    env = {
        "OUTKIT_ACCESS_KEY": "ek",
        "OUTKIT_ACCESS_PASSPHRASE": "ep",
        "OUTKIT_ACCESS_SECRET": "es",
        "OUTKIT_API_URL": "http://env.example/v1/",
        "OUTKIT_TIMEOUT": "2.5",
        "OUTKIT_RETRIES": "0",
    }
    s = resolve_settings(config_file, profile="prod", env=env)
    assert (s.key, s.passphrase, s.secret) == ("ek", "ep", "es")
    assert (s.api_url, s.timeout, s.retries) == ("http://env.example/v1", 2.5, 0)
    assert s.sources["secret"] == "OUTKIT_ACCESS_SECRET"
    assert s.project == "acme"  # not overridden: still the profile's


ENV_KEY = {"OUTKIT_ACCESS_KEY": "prodkey", "OUTKIT_ACCESS_PASSPHRASE": "pp",
           "OUTKIT_ACCESS_SECRET": "ss"}  # fmt: skip


def test_environment_credentials_never_take_another_keys_default_profile(
    config_file: Path,
) -> None:
    """The README's cron recipe after the quick start: the default profile is the sandbox
    (its own key, a loopback URL). Production credentials from the environment went to the
    sandbox's port; the default profile of another key is not used at all."""
    save_profile(config_file, "sandbox", {"key": "sbx", "passphrase": "p", "secret": "s",
                                          "api_url": "http://127.0.0.1:8025/v1",
                                          "project": "demo"})  # fmt: skip
    s = resolve_settings(config_file, env=ENV_KEY)
    assert (s.key, s.api_url, s.project, s.profile) == ("prodkey", DEFAULT_API_URL, None, None)
    # chosen, it is used (with the environment's credentials over its own)
    for chosen in (
        resolve_settings(config_file, profile="sandbox", env=ENV_KEY),
        resolve_settings(config_file, env={**ENV_KEY, "OUTKIT_PROFILE": "sandbox"}),
    ):
        assert (chosen.key, chosen.api_url, chosen.project) == (
            "prodkey", "http://127.0.0.1:8025/v1", "demo"
        )  # fmt: skip
    # the same key (a secret rotated in the environment), or a profile without a key
    # (defaults meant for any key): used
    same = resolve_settings(config_file, env={**ENV_KEY, "OUTKIT_ACCESS_KEY": "sbx"})
    assert (same.api_url, same.project) == ("http://127.0.0.1:8025/v1", "demo")
    save_profile(config_file, "defaults", {"project": "acme"})
    with edit_config(config_file) as data:
        data["default_profile"] = "defaults"
    assert resolve_settings(config_file, env=ENV_KEY).project == "acme"


@pytest.mark.parametrize(
    "env",
    [
        {"OUTKIT_ACCESS_PASSPHRASE": "pp", "OUTKIT_ACCESS_SECRET": "ss"},
        {"OUTKIT_ACCESS_KEYS": "prodkey", "OUTKIT_ACCESS_PASSPHRASE": "pp",
         "OUTKIT_ACCESS_SECRET": "ss"},
        {"OUTKIT_ACCESS_SECRET": "ss"},
    ],
    ids=["no-key", "mistyped-key", "secret-only"],
)  # fmt: skip
def test_partial_environment_credentials_never_mix_with_another_keys_default(
    config_file: Path, env: dict[str, str]
) -> None:
    """Without OUTKIT_ACCESS_KEY (or with it mistyped) the request went out with the sandbox
    profile's key, the production passphrase and secret, to the sandbox's URL. Now the
    default profile of another key is not used at all, and the error says what is set,
    what is missing, and how to select the profile."""
    save_profile(config_file, "sandbox", {"key": "sbx", "passphrase": "p", "secret": "s",
                                          "api_url": "http://127.0.0.1:8025/v1"})  # fmt: skip
    s = resolve_settings(config_file, env=env)
    assert (s.profile, s.key, s.api_url) == (None, None, DEFAULT_API_URL)
    assert s.passphrase == env.get("OUTKIT_ACCESS_PASSPHRASE")
    res = run("get", "some-id", env={**env, "OUTKIT_CONFIG": str(config_file)})
    assert res.exit_code == 3
    [line] = res.stderr.splitlines()
    assert "no default profile" not in line
    set_vars = [v for v in sorted(env) if v != "OUTKIT_ACCESS_KEYS"]
    assert f"{', '.join(set_vars)} set" in line
    assert "OUTKIT_ACCESS_KEY missing" in line or "OUTKIT_ACCESS_KEY, " in line
    assert "default profile 'sandbox' belongs to another key" in line
    assert "`-p sandbox` selects it" in line
    if "OUTKIT_ACCESS_KEYS" in env:
        assert "OUTKIT_ACCESS_KEYS is not a variable outkit reads" in line


def test_partial_environment_credentials_with_the_default_profiles_key(
    config_file: Path,
) -> None:
    """OUTKIT_ACCESS_KEY equal to the default profile's key: the profile is this key's, its
    other credentials and URL are used (a rotated secret in the environment)."""
    save_profile(config_file, "sandbox", {"key": "sbx", "passphrase": "p", "secret": "s",
                                          "api_url": "http://127.0.0.1:8025/v1"})  # fmt: skip
    s = resolve_settings(config_file, env={"OUTKIT_ACCESS_KEY": "sbx", "OUTKIT_ACCESS_SECRET": "n"})
    assert (s.profile, s.passphrase, s.secret) == ("sandbox", "p", "n")
    # chosen with -p, the profile fills in what the environment leaves out
    chosen = resolve_settings(config_file, profile="sandbox", env={"OUTKIT_ACCESS_SECRET": "n"})
    assert (chosen.key, chosen.secret) == ("sbx", "n")


def test_environment_credentials_from_the_command_line(config_file: Path) -> None:
    """Through the CLI: -v says why the default profile is left out."""
    save_profile(config_file, "sandbox", {"key": "sbx", "passphrase": "p", "secret": "s",
                                          "api_url": "http://127.0.0.1:9/v1"})  # fmt: skip
    env = {**ENV_KEY, "OUTKIT_CONFIG": str(config_file)}
    res = run("-v", "sign", "GET", "/v1/messages", env=env)
    assert res.exit_code == 0, res.stderr
    assert "default profile 'sandbox' (another key) is not used" in res.stderr


def test_flags_over_environment(config_file: Path) -> None:
    _profile(config_file)
    env = {"OUTKIT_ACCESS_KEY": "ek", "OUTKIT_TIMEOUT": "2.5"}
    s = resolve_settings(config_file, env=env, overrides={"key": "fk", "timeout": 9.0})
    assert (s.key, s.timeout) == ("fk", 9.0)
    assert s.sources["key"] == "command line"


def test_built_in_defaults(config_file: Path) -> None:
    s = resolve_settings(config_file, env={})
    assert s.profile is None
    assert (s.key, s.secret, s.passphrase) == (None, None, None)
    assert (s.api_url, s.signed) == (DEFAULT_API_URL, True)
    assert (s.timeout, s.retries) == (config.DEFAULT_TIMEOUT, config.DEFAULT_RETRIES)
    with pytest.raises(Exception, match="OUTKIT_ACCESS_KEY") as info:
        s.require_credentials()
    assert info.value.exit_code == 3


def test_profile_selection(config_file: Path) -> None:
    save_profile(config_file, "a", {"key": "ka"})
    save_profile(config_file, "b", {"key": "kb"})
    assert resolve_settings(config_file, env={}).key == "ka"  # the default
    assert resolve_settings(config_file, env={"OUTKIT_PROFILE": "b"}).key == "kb"
    assert resolve_settings(config_file, profile="a", env={"OUTKIT_PROFILE": "b"}).key == "ka"
    with pytest.raises(UsageError, match=r"unknown profile 'c' \(known profiles: a, b\)"):
        resolve_settings(config_file, profile="c", env={})
    # a name from the environment says so: a stale export is easy to forget
    stale = run("get", env={"OUTKIT_PROFILE": "sandb"})
    assert stale.exit_code == 2
    assert stale.stderr == (
        "error: unknown profile 'sandb' (from OUTKIT_PROFILE) (known profiles: a, b)\n"
    )


def test_a_loose_mode_warns_once_per_command(config_file: Path) -> None:
    """A command that reads the config twice (settings, then the profile list) warns once;
    the next command warns again."""
    save_profile(config_file, "a", {"key": "ka", "passphrase": "p", "secret": "s",
                                    "api_url": "http://127.0.0.1:9/v1"})  # fmt: skip
    config_file.chmod(0o644)
    for _ in range(2):
        result = run("send", "--to", "a@b.co", "--project", "demo", "--text-body", "x",
                     "--dry-run")  # fmt: skip
        assert result.stderr.count("is readable by other users") == 1, result.stderr


@pytest.mark.parametrize(
    ("name", "value"),
    [("OUTKIT_TIMEOUT", "soon"), ("OUTKIT_RETRIES", "1.5"), ("OUTKIT_RETRIES", "-1")],
)
def test_bad_numbers_in_the_environment(config_file: Path, name: str, value: str) -> None:
    with pytest.raises(UsageError, match=name):
        resolve_settings(config_file, env={name: value})


def test_load_config_of_a_missing_file_is_empty(tmp_path: Path) -> None:
    assert load_config(tmp_path / "nope.toml") == {}


def test_config_error_is_a_usage_error() -> None:
    assert ConfigError("x").exit_code == 2
