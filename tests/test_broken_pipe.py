"""Commands piped into a reader that went away (`outkit get --field id | head -1`): exit 0
and nothing on stderr (issue 12, part 4). The reader here is gone before the command
writes its first byte, the harshest case: every write fails with EPIPE."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.sandbox_fixture import Sandbox


def run_into_closed_pipe(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    read, write = os.pipe()
    os.close(read)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "outkit_cli", *args],
            stdin=subprocess.DEVNULL,
            stdout=write,
            stderr=subprocess.PIPE,
            env={**os.environ, **env},
            timeout=120,
            check=False,
        )
    finally:
        os.close(write)
    return proc.returncode, proc.stderr.decode()


@pytest.fixture(scope="module")
def message_id(sandbox: Sandbox) -> str:
    status, created = sandbox.request(
        "POST",
        "/messages",
        {"message": {"type": "email", "project": "demo", "template": "welcome",
                     "to": "pipe@example.com", "data": {"name": "P"}}},
    )  # fmt: skip
    assert status == 200, created
    return created["data"]["id"]


CASES = {
    "get --field id": ["get", "--field", "id"],
    "get": ["get"],
    "get --json": ["get", "--json"],
    "get ID": ["get", "{id}"],
    "get ID --body html": ["get", "{id}", "--body", "html", "--wait"],
    "sign": ["sign", "GET", "/v1/messages"],
    "sign --json": ["sign", "GET", "/v1/messages", "--json"],
    "send --dry-run": ["send", "--dry-run", "--project", "demo", "--to", "a@b.co",
                       "--text-body", "x"],
    "send --batch --dry-run": ["send", "--batch", "{rows}", "--project", "demo",
                               "--template", "welcome", "--dry-run"],
    "--help": ["--help"],
    "get --help": ["get", "--help"],
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_a_reader_that_went_away_is_exit_0_and_silent(
    sandbox: Sandbox, message_id: str, tmp_path: Path, case: str
) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text("to\n" + "".join(f"r{i}@example.com\n" for i in range(2000)))
    args = [a.format(id=message_id, rows=rows) for a in CASES[case]]
    code, stderr = run_into_closed_pipe(args, sandbox.env())
    assert (code, stderr) == (0, ""), stderr
