"""The root command: --help/--version, global options, the exit-code contract, usage errors,
completions, and what `--help`, `--version` and `sign` import."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from outkit_cli import __version__, errors
from outkit_cli.commands.completion import SHELLS, completion_script
from outkit_cli.config import save_profile
from tests.helpers import run, run_subprocess

ROOT = Path(__file__).resolve().parent.parent


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0
    assert result.stdout == f"outkit {__version__}\n"
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'version = "{__version__}"' in pyproject


def test_console_script_and_module_both_run() -> None:
    assert run_subprocess("--version").stdout == f"outkit {__version__}\n"
    script = Path(sys.executable).with_name("outkit")
    proc = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0
    assert proc.stdout == f"outkit {__version__}\n"


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_lists_commands_and_ends_with_the_exit_code_table(flag: str) -> None:
    result = run(flag)
    assert result.exit_code == 0
    out = result.stdout
    for name in ("send", "get", "keys", "sign", "serve", "completion"):
        assert re.search(rf"^  {name}\s", out, re.M), name
    for option in ("--profile", "--config", "--api-url", "--verbose", "--no-color", "--version"):
        assert option in out
    for var in ("OUTKIT_PROFILE", "OUTKIT_CONFIG", "OUTKIT_API_URL"):
        assert var in out
    table = out[out.index("Exit codes:") :].splitlines()[1:]
    assert [line.split(None, 1) for line in table] == [
        [str(int(code)), text] for code, text in errors.EXIT_CODE_HELP.items()
    ]


def test_exit_code_contract() -> None:
    assert [int(c) for c in errors.ExitCode] == list(range(11))
    assert set(errors.EXIT_CODE_HELP) == set(errors.ExitCode)
    expected = {
        errors.UsageError: 2,
        errors.ConfigError: 2,
        errors.AuthError: 3,
        errors.NotFoundError: 4,
        errors.RejectedError: 5,
        errors.RateLimitedError: 6,
        errors.ServerError: 7,
        errors.NetworkError: 8,
        errors.MessageFailedError: 9,
        errors.WaitTimeoutError: 10,
    }
    for cls, code in expected.items():
        assert cls("x").exit_code == code
        assert issubclass(cls, errors.OutkitError)


def test_docs_document_every_exit_code() -> None:
    section = (ROOT / "docs" / "exit-codes.md").read_text()
    codes = [int(m) for m in re.findall(r"^\| (\d+) \|", section, re.M)]
    assert codes == [int(c) for c in errors.ExitCode]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("nope",), "No such command 'nope'"),
        (("--bogus",), "No such option '--bogus'"),
        (("sign", "--bogus"), "No such option '--bogus'"),
        (("sign",), "Missing argument 'METHOD'"),
        (("completion", "tcsh"), "'tcsh' is not one of"),
        (("--profile",), "Option '--profile' requires an argument"),
        (("keys", "add"), "Missing argument 'NAME'"),
    ],
)
def test_usage_errors_are_one_line_with_exit_2(args: tuple[str, ...], message: str) -> None:
    result = run(*args)
    assert result.exit_code == 2
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ")
    assert message in line
    assert line.endswith("--help')")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args", [(), ("keys",)])
def test_a_bare_group_shows_its_help(args: tuple[str, ...]) -> None:
    result = run(*args)
    assert result.exit_code == 2
    assert result.stderr.startswith("Usage: outkit")
    assert "Commands:" in result.stderr


def test_unexpected_errors_are_one_line_and_verbose_adds_the_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from outkit_cli.commands import sign

    def broken(**kwargs: object) -> dict[str, object]:
        raise RuntimeError("boom")

    monkeypatch.setattr(sign, "signing_record", broken)
    result = run("sign", "GET", "/v1/messages", "--secret", "s")
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: unexpected RuntimeError: boom (a bug")
    verbose = run("--verbose", "sign", "GET", "/v1/messages", "--secret", "s")
    assert verbose.exit_code == 1
    assert "Traceback (most recent call last)" in verbose.stderr
    assert verbose.stderr.splitlines()[-1].startswith("error: unexpected RuntimeError")


def test_api_url_from_option_and_environment(config_file: Path) -> None:
    save_profile(config_file, "p", {"key": "k", "passphrase": "p", "secret": "s",
                                    "api_url": "https://profile.example/v1"})  # fmt: skip

    def curl_url(*args: str, env: dict[str, str] | None = None) -> str:
        result = run(*args, "sign", "GET", "/v1/messages", "--curl", env=env)
        assert result.exit_code == 0, result.stderr
        return result.stdout.split()[4]

    assert curl_url() == "https://profile.example/v1/messages"
    env = {"OUTKIT_API_URL": "https://env.example/v1"}
    assert curl_url(env=env) == "https://env.example/v1/messages"
    assert curl_url("--api-url", "https://flag.example/v1", env=env) == (
        "https://flag.example/v1/messages"
    )


def test_an_api_url_from_the_environment_overriding_the_profile_is_named(
    config_file: Path,
) -> None:
    # a stale `export OUTKIT_API_URL=http://127.0.0.1:8025/v1` must not silently carry the
    # production profile's credentials there
    save_profile(config_file, "prod", {"key": "k", "passphrase": "p", "secret": "s"})
    env = {"OUTKIT_API_URL": "http://127.0.0.1:8025/v1"}
    result = run("-p", "prod", "sign", "GET", "/v1/messages", "--json", env=env)
    assert result.exit_code == 0, result
    assert result.stderr == (
        "warning: OUTKIT_API_URL=http://127.0.0.1:8025/v1 overrides the API URL "
        "https://api.outkit.io/v1 of profile 'prod', whose credentials are used; unset "
        "OUTKIT_API_URL if that is not meant\n"
    )
    same = {"OUTKIT_API_URL": "https://api.outkit.io/v1/"}
    assert run("-p", "prod", "sign", "GET", "/v1/messages", env=same).stderr == ""
    # credentials from the environment too: nothing of the profile's goes anywhere
    creds = {**env, "OUTKIT_ACCESS_KEY": "ek"}
    assert run("-p", "prod", "sign", "GET", "/v1/messages", env=creds).stderr == ""


def test_profile_option_and_environment_select_the_profile(config_file: Path) -> None:
    save_profile(config_file, "a", {"key": "ka", "passphrase": "p", "secret": "s"})
    save_profile(config_file, "b", {"key": "kb", "passphrase": "p", "secret": "s"})

    def key(*args: str, env: dict[str, str] | None = None) -> str:
        result = run(*args, "sign", "GET", "/v1/messages", "--json", env=env)
        return json.loads(result.stdout)["headers"]["Outkit-Access-Key"]

    assert key() == "ka"
    assert key(env={"OUTKIT_PROFILE": "b"}) == "kb"
    assert key("-p", "a", env={"OUTKIT_PROFILE": "b"}) == "ka"


# --- completions ----------------------------------------------------------------------------


@pytest.mark.parametrize("shell", SHELLS)
def test_checked_in_completions_are_current(shell: str) -> None:
    path = ROOT / "completions" / f"outkit.{shell}"
    assert path.read_text() == completion_script(shell), f"{path} is stale: run `make completions`"


@pytest.mark.parametrize("shell", SHELLS)
def test_completion_command_prints_the_same_script(shell: str) -> None:
    result = run("completion", shell)
    assert result.exit_code == 0
    assert result.stdout == (ROOT / "completions" / f"outkit.{shell}").read_text()


def test_bash_completion_script_completes_commands_and_options() -> None:
    script = ROOT / "completions" / "outkit.bash"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}

    def complete(*words: str) -> list[str]:
        words_literal = " ".join(f"'{w}'" for w in words)
        proc = subprocess.run(
            ["bash", "-c", f"source '{script}'; COMP_WORDS=({words_literal}); "
             f"COMP_CWORD={len(words) - 1}; _outkit_completion outkit; "
             'printf "%s\\n" "${COMPREPLY[@]}"'],
            capture_output=True, text=True, env=env, timeout=30,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.split()

    assert complete("outkit", "si") == ["sign"]
    assert complete("outkit", "sign", "--ti") == ["--timestamp"]


# --- startup cost ---------------------------------------------------------------------------

HEAVY = ("requests", "rich", "urllib3")


@pytest.mark.parametrize(
    "args",
    [
        ("--help",),
        ("--version",),
        ("sign", "POST", "/v1/messages", "--body", '{"message":{}}', "--secret", "s",
         "--timestamp", "1"),
        ("sign", "POST", "/v1/messages", "--secret", "s", "--json"),
    ],
    ids=["help", "version", "sign", "sign-json"],
)  # fmt: skip
def test_fast_paths_import_neither_requests_nor_rich(args: tuple[str, ...]) -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "outkit_cli", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    imported = {
        line.split("|")[-1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "click" in imported  # the parse worked: this really is the import log
    assert not {m for m in imported if m.split(".")[0] in HEAVY}


# --- docs checked against the code ----------------------------------------------------------


def _options(command: object) -> list[str]:
    import click

    assert isinstance(command, click.Command)
    return [
        opt
        for param in command.params
        if isinstance(param, click.Option) and not param.hidden
        for opt in param.opts
        if opt.startswith("--") and opt != "--help"
    ]


def test_docs_document_keys_and_sign() -> None:
    from outkit_cli.commands.keys import keys
    from outkit_cli.commands.sign import sign

    section = (ROOT / "docs" / "keys.md").read_text() + (ROOT / "docs" / "sign.md").read_text()
    for name, command in keys.commands.items():
        assert f"`keys {name}" in section, f"keys {name} is not in docs/"
        if name != "test":  # documented by its own author
            for opt in _options(command):
                assert opt in section, f"keys {name} {opt} is not in docs/"
    for opt in _options(sign):
        assert f"`{opt}" in section, f"sign {opt} is not in docs/"


@pytest.mark.parametrize(
    "args",
    [
        ("--config", "{cfg}", "-p", "b", "keys", "show", "--field", "name"),
        ("keys", "show", "--field", "name", "--config", "{cfg}", "-p", "b"),
        ("keys", "--config", "{cfg}", "show", "--field", "name", "--profile", "b"),
        ("-p", "a", "--config", "{cfg}", "keys", "show", "-p", "b", "--field", "name"),
    ],
)
def test_global_options_before_or_after_the_command_name(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    cfg = tmp_path / "other.toml"
    for name in ("a", "b"):
        save_profile(cfg, name, {"key": f"k-{name}", "passphrase": "p", "secret": "s"})
    result = run(*(a.replace("{cfg}", str(cfg)) for a in args), "b")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "b\n", "")


def test_the_global_option_given_last_wins_over_the_environment(config_file: Path) -> None:
    save_profile(config_file, "a", {"key": "k-a", "passphrase": "p", "secret": "s"})
    save_profile(config_file, "b", {"key": "k-b", "passphrase": "p", "secret": "s"})
    env = {"OUTKIT_PROFILE": "a"}
    assert run("keys", "show", "--field", "name", env=env).stdout == "a\n"
    assert run("keys", "show", "-p", "b", "--field", "name", env=env).stdout == "b\n"
    assert run("-p", "a", "keys", "show", "-p", "b", "--field", "name").stdout == "b\n"
    assert run("-p", "b", "keys", "show", "-p", "a", "--field", "name").stdout == "a\n"


@pytest.mark.parametrize(
    "args",
    [
        ("--timeout", "0.5", "--retries", "0", "get", "x"),
        ("get", "x", "--timeout", "0.5", "--retries", "0"),
        ("--retries", "0", "keys", "test", "--timeout", "0.5"),
        ("keys", "test", "-v", "--no-color", "--api-url", "http://127.0.0.1:9/v1"),
    ],
)
def test_network_options_anywhere_on_the_line(config_file: Path, args: tuple[str, ...]) -> None:
    # port 9 (discard) is closed here: the request fails fast as a network error (8),
    # which shows every option was accepted and the URL was the one given
    save_profile(config_file, "a", {"key": "k", "passphrase": "p", "secret": "s"})
    result = run("--api-url", "http://127.0.0.1:9/v1", *args, "--retries", "0")
    assert result.exit_code == 8, result.stderr
    assert "127.0.0.1:9" in result.stderr


def test_every_command_help_ends_with_examples_and_lists_exit_codes() -> None:
    from outkit_cli.commands import COMMANDS
    from outkit_cli.commands.keys import keys

    paths = [(name,) for name in COMMANDS] + [("keys", name) for name in keys.commands]
    for path in paths:
        out = run(*path, "--help").stdout
        assert "Exit codes:" in out, path
        tail = out[out.index("Examples:") :].splitlines()[1:]
        assert tail and all(
            line.startswith("    outkit") or line.startswith("      ") or line.startswith("    ")
            for line in tail
        ), (path, tail)
        for vague in ("INTEGER", "FLOAT", "RANGE", " TEXT "):
            assert vague not in out, (path, vague)


@pytest.mark.parametrize("columns", ["80", "200"])
def test_every_help_fits_80_columns(columns: str) -> None:
    """The root's and every command's help, on an 80-column terminal and on a wide one
    (where click's own wrapping stops at 100 columns, the examples and exit codes are
    written to fit 80)."""
    from outkit_cli.commands import COMMANDS
    from outkit_cli.commands.keys import keys

    paths = [()] + [(name,) for name in COMMANDS] + [("keys", name) for name in keys.commands]
    for path in paths:
        result = run(*path, "--help", env={"COLUMNS": columns})
        assert result.exit_code == 0, (path, result.stderr)
        limit = 80 if columns == "80" else 100
        wide = [line for line in result.stdout.splitlines() if len(line) > limit]
        assert not wide, (path, wide)
        # what is written to fit (click's \b blocks: exit codes, examples) fits 80 at any width
        out = result.stdout
        codes = out[out.index("Exit codes:") :].split("\n\n")[0]
        examples = out[out.index("Examples:") :] if path else ""
        fixed = [line for line in f"{codes}\n{examples}".splitlines() if len(line) > 80]
        assert not fixed, (path, fixed)


def test_a_long_exit_code_meaning_wraps_under_itself() -> None:
    from outkit_cli.commands import exit_codes_text

    text = exit_codes_text({2: "word " * 30})
    lines = text.splitlines()[2:]
    assert len(lines) > 1 and all(len(line) <= 78 for line in lines)
    assert lines[0].startswith("    2  word") and lines[1].startswith("       word")


@pytest.mark.parametrize(
    ("args", "typed", "suggestion", "where"),
    [
        (("sned",), "sned", "send", "outkit"),
        (("sgin", "GET", "/v1"), "sgin", "sign", "outkit"),
        (("keys", "lsit"), "lsit", "list", "outkit keys"),
        (("xyzzy",), "xyzzy", None, "outkit"),
    ],
)
def test_a_mistyped_command_gets_the_nearest_one(
    args: tuple[str, ...], typed: str, suggestion: str | None, where: str
) -> None:
    result = run(*args)
    assert (result.exit_code, result.stdout) == (2, "")
    hint = f" Did you mean {suggestion!r}?" if suggestion else ""
    assert result.stderr == f"error: No such command {typed!r}.{hint} (see '{where} --help')\n"


def test_keys_help_lists_every_subcommand_whole() -> None:
    out = run("keys", "--help").stdout
    from outkit_cli.commands.keys import keys

    for name, sub in keys.commands.items():
        assert f"  {name}  " in out or re.search(rf"^  {name}\s+\S", out, re.M), name
        assert sub.short_help in " ".join(out.split()), name


def test_root_help_and_command_help_share_one_summary() -> None:
    from outkit_cli.commands import COMMANDS

    root = " ".join(run("--help").stdout.split())
    for name, (_, _, summary) in COMMANDS.items():
        assert summary in root
        assert summary in " ".join(run(name, "--help").stdout.split())


def test_commands_never_import_the_root() -> None:
    """commands/ depend on options.py and the core modules, never on cli.py (issue 10)."""
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "outkit_cli" / "commands").rglob("*.py")
        if re.search(r"^\s*(from outkit_cli\.cli import|from outkit_cli import cli\b|"
                     r"import outkit_cli\.cli)", path.read_text(), re.M)
    ]  # fmt: skip
    assert offenders == []
