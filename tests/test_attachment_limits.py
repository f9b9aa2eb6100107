"""Attachment limits, checked on the open file (fstat) before it is read: a 400 MB sparse
file was read whole (848 MB RSS) and a 3 GB one under `ulimit -v` ended in MemoryError,
exit 1 (attacker trial). The API reference documents no limit; the sandbox's are used
(multipart.MAX_ATTACHMENT_BYTES per file, MAX_ATTACHMENTS_TOTAL per message)."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from outkit_cli.multipart import MAX_ATTACHMENT_BYTES, MAX_ATTACHMENTS, MAX_ATTACHMENTS_TOTAL
from outkit_cli.sandbox.attachments import MAX_ATTACHMENT_BYTES as SANDBOX_MAX
from tests.sandbox_fixture import Sandbox
from tests.test_send import ref, stored
from tests.test_send import send as _send

GB = 1024**3


def sparse(path: Path, size: int) -> Path:
    with path.open("wb") as fh:
        fh.truncate(size)  # no blocks written: the test costs no disk
    return path


def send(box: Sandbox, *args: str) -> object:
    return _send(box, "--project", "demo", "--to", "a@example.com", "--text-body", "x", *args)


def test_the_client_and_the_sandbox_share_the_limit() -> None:
    assert MAX_ATTACHMENT_BYTES == SANDBOX_MAX == 5 * 1024 * 1024


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_file_over_the_limit_is_exit_2_before_anything_is_sent(
    sandbox: Sandbox, tmp_path: Path, dry_run: bool
) -> None:
    big = sparse(tmp_path / "big.iso", 400 * 1024 * 1024)
    mark = ref()
    extra = ["--dry-run"] if dry_run else []
    result = send(sandbox, "--attach", str(big), "--id-from-submitter", mark, *extra)
    assert result.exit_code == 2  # type: ignore[attr-defined]
    err = result.stderr.strip()  # type: ignore[attr-defined]
    assert err == f"error: --attach {big}: 400 MiB, over the limit of 5 MiB per file"
    assert stored(sandbox, mark) == []


def test_files_over_the_total_or_count_are_refused(sandbox: Sandbox, tmp_path: Path) -> None:
    mark = ref()
    half = [sparse(tmp_path / f"part{i}.bin", MAX_ATTACHMENT_BYTES) for i in range(2)]
    assert 2 * MAX_ATTACHMENT_BYTES > MAX_ATTACHMENTS_TOTAL
    result = send(sandbox, "--attach", str(half[0]), "--attach", str(half[1]),
                  "--id-from-submitter", mark)  # fmt: skip
    assert result.exit_code == 2  # type: ignore[attr-defined]
    assert "the files come to 10 MiB, over the limit of 9 MiB per message" in result.stderr  # type: ignore[attr-defined]
    many = [sparse(tmp_path / f"f{i}.txt", 1) for i in range(MAX_ATTACHMENTS + 1)]
    result = send(sandbox, *[a for f in many for a in ("--attach", str(f))])
    assert result.exit_code == 2  # type: ignore[attr-defined]
    assert "error: --attach: 11 files, over the limit of 10 per message" in result.stderr  # type: ignore[attr-defined]
    assert stored(sandbox, mark) == []


def test_a_file_at_the_limit_is_sent(sandbox: Sandbox, tmp_path: Path) -> None:
    mark = ref()
    edge = tmp_path / "edge.bin"
    edge.write_bytes(b"x" * MAX_ATTACHMENT_BYTES)
    result = send(sandbox, "--attach", str(edge), "--id-from-submitter", mark)
    assert result.exit_code == 0, result.stderr  # type: ignore[attr-defined]
    (msg,) = stored(sandbox, mark)
    assert [a["filename"] for a in msg["attachments"]] == ["edge.bin"]


def test_a_huge_file_under_a_memory_limit_is_exit_2(sandbox: Sandbox, tmp_path: Path) -> None:
    # `ulimit -v`: reading a 3 GB file whole raised MemoryError (exit 1, "a bug")
    huge = sparse(tmp_path / "huge.bin", 3 * GB)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2 * GB, 2 * GB))

    env = {**os.environ, **sandbox.env()}
    proc = subprocess.run(
        [sys.executable, "-m", "outkit_cli", "send", "--project", "demo", "--to",
         "a@example.com", "--text-body", "x", "--attach", str(huge)],
        capture_output=True, text=True, env=env, preexec_fn=limit, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "over the limit of 5 MiB per file" in proc.stderr


def test_a_batch_row_with_a_file_over_the_limit_is_invalid(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    mark = ref()
    (tmp_path / "files").mkdir()
    sparse(tmp_path / "files" / "big.iso", 400 * 1024 * 1024)
    (tmp_path / "files" / "ok.txt").write_text("hei")
    rows = tmp_path / "rows.csv"
    rows.write_text(
        "to,id_from_submitter,attachments\n"
        f"a@example.com,{mark}-1,files/big.iso\n"
        f"b@example.com,{mark}-2,files/ok.txt\n"
        f"c@example.com,{mark}-3,{';'.join(['files/ok.txt'] * 11)}\n",
        "utf-8",
    )
    for extra in (["--dry-run"], []):
        result = _send(sandbox, "--project", "demo", "--batch", str(rows), "--text-body", "x",
                       "--no-auto-id", *extra)  # fmt: skip
        assert result.exit_code == 2, result.stderr  # a row was invalid
        lines = {row["row"]: row for row in map(json.loads, result.stdout.splitlines())}
        assert lines[2]["status"] == "invalid"
        assert lines[2]["error"] == (
            "column attachments: files/big.iso: 400 MiB, over the limit of 5 MiB per file"
        )
        assert lines[3]["status"] == ("valid" if extra else "accepted")
        assert lines[4]["status"] == "invalid"
        assert lines[4]["error"] == "column attachments: 11 files, over the limit of 10 per message"
    assert stored(sandbox, f"{mark}-1") == []
    assert len(stored(sandbox, f"{mark}-2")) == 1
