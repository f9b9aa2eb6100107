"""JSON (and TOML) nested 100,000 deep is bad input, not a bug (issue 12, part 4)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import run

DEEP = 100_000
SEND = ("send", "--dry-run", "--project", "p", "--to", "a@example.com", "--text-body", "x")


def deep_object() -> str:
    return '{"a":' * DEEP + "1" + "}" * DEEP


@pytest.mark.parametrize("option", ["--data-file", "--message-file"])
def test_deep_json_in_a_file_option_is_exit_2_naming_it(tmp_path: Path, option: str) -> None:
    path = tmp_path / "deep.json"
    path.write_text(deep_object())
    result = run(*SEND, option, str(path))
    assert result.exit_code == 2, result
    assert result.stderr == f"error: {option} {path}: invalid JSON: nested too deeply\n"


def test_deep_json_in_data_is_exit_2_naming_the_key() -> None:
    # one argv string is limited to 128 KiB on Linux: 50,000 levels fit, and are enough
    value = "[" * 50_000 + "]" * 50_000
    result = run(*SEND, "--data", f"items:={value}")
    assert result.exit_code == 2, result
    assert result.stderr == "error: --data items: invalid JSON: nested too deeply\n"


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_deep_batch_row_is_invalid_and_the_others_go_on(tmp_path: Path, fmt: str) -> None:
    import json

    src = tmp_path / f"rows.{fmt}"
    if fmt == "csv":
        # a CSV field is capped at 128 KiB: arrays, one byte a level
        deep = '{""a"":' + "[" * 60_000 + "]" * 60_000 + "}"
        src.write_text(f'to,data\na@example.com,"{deep}"\nb@example.com,{{}}\n')
    else:
        ok = json.dumps({"to": "b@example.com"})
        src.write_text('{"to": "a@example.com", "data": ' + deep_object() + "}\n" + ok + "\n")
    result = run("send", "--batch", str(src), "--project", "p", "--text-body", "x", "--dry-run")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["status"] for r in rows] == ["invalid", "valid"], result
    assert "nested too deeply" in rows[0]["error"]
    assert result.exit_code != 1


def test_a_deep_config_is_exit_2_naming_the_file(config_file: Path) -> None:
    config_file.parent.mkdir(mode=0o700)
    config_file.write_text("a = " + "[" * DEEP + "]" * DEEP + "\n")
    config_file.chmod(0o600)
    result = run("keys", "list")
    assert result.exit_code == 2, result
    assert result.stderr == (
        f"error: config file {config_file} does not parse: nested too deeply; fix or remove it\n"
    )
