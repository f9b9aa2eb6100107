"""A batch's attachments column is untrusted: a row can only attach regular files inside
the input file's directory, reached without a symbolic link, opened once, and a file that
cannot be read is the row's error, never the run's (attacker trial, finding 6)."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest

from outkit_cli.batch import command
from tests.helpers import run
from tests.sandbox_fixture import Sandbox


def _rows(path: Path, cells: list[str], mark: str) -> Path:
    """JSON Lines rows, one per attachments cell (JSON carries any character, NUL too)."""
    rows = [
        {"to": f"a{i}@example.com", "subject": "s", "id_from_submitter": f"{mark}-{i}",
         "attachments": cell}
        for i, cell in enumerate(cells)
    ]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    return path


def _send(box: Sandbox, rows: Path, *extra: str):
    return run(
        "send", "--batch", str(rows), "--project", "demo", "--text-body", "x", *extra,
        env=box.env(),
    )  # fmt: skip


def _by_row(stdout: str) -> dict[int, dict]:
    return {r["row"]: r for r in map(json.loads, stdout.splitlines())}


def _leaked(box: Sandbox, secret: bytes) -> list[Path]:
    """Files of the sandbox (database, outbox) holding `secret`."""
    found = []
    for path in box.data_dir.rglob("*"):
        try:
            if path.is_file() and secret in path.read_bytes():
                found.append(path)
        except FileNotFoundError:  # a temporary file the sandbox renamed or removed meanwhile
            continue
    return found


@pytest.fixture
def shared(tmp_path: Path) -> tuple[Path, bytes]:
    """A batch directory, and a secret file just outside it."""
    secret = f"secret-{uuid.uuid4()}".encode()
    (tmp_path / "secret.txt").write_bytes(secret)
    d = tmp_path / "shared"
    d.mkdir()
    (d / "good.txt").write_bytes(b"good")
    (d / "sub").mkdir()
    (d / "sub" / "inner.txt").write_bytes(b"inner")
    return d, secret


def test_an_attachment_swapped_for_a_symlink_after_the_check_is_not_read(
    sandbox: Sandbox, shared: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race of the trial, made deterministic: the row is checked (a regular file), then
    the file becomes a symlink to a secret outside the directory before it is sent."""
    d, secret = shared
    (d / "x.txt").write_bytes(b"harmless")
    mark = f"swap-{uuid.uuid4()}"
    rows = _rows(d / "rows.jsonl", ["x.txt"], mark)
    real_create = command.ClientBatchApi.create

    def swapped(self, message):
        (d / "x.tmp").symlink_to(d.parent / "secret.txt")
        os.replace(d / "x.tmp", d / "x.txt")
        return real_create(self, message)

    monkeypatch.setattr(command.ClientBatchApi, "create", swapped)
    res = _send(sandbox, rows)
    assert "Traceback" not in res.output and "a bug" not in res.stderr
    row = _by_row(res.stdout)[1]
    assert row["status"] == "failed", row
    assert "x.txt" in row["error"] and "symbolic link" in row["error"]
    assert res.exit_code == 2
    assert _leaked(sandbox, secret) == []


def test_a_parent_directory_swapped_for_a_symlink_after_the_check_is_not_followed(
    sandbox: Sandbox, shared: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parent-directory variant of the race: `sub` becomes a link to a directory
    outside holding a file of the same name (O_NOFOLLOW on the last component alone would
    follow it)."""
    d, secret = shared
    outside = d.parent / "outside"
    outside.mkdir()
    (outside / "inner.txt").write_bytes(secret)
    mark = f"pswap-{uuid.uuid4()}"
    rows = _rows(d / "rows.jsonl", ["sub/inner.txt"], mark)
    real_create = command.ClientBatchApi.create

    def swapped(self, message):
        os.rename(d / "sub", d / "sub.real")
        (d / "sub").symlink_to(outside)
        return real_create(self, message)

    monkeypatch.setattr(command.ClientBatchApi, "create", swapped)
    res = _send(sandbox, rows)
    assert "Traceback" not in res.output and "a bug" not in res.stderr
    row = _by_row(res.stdout)[1]
    assert row["status"] == "failed" and "symbolic link" in row["error"], row
    assert res.exit_code == 2
    assert _leaked(sandbox, secret) == []


def test_the_input_directory_swapped_for_a_symlink_mid_run_is_not_followed(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attacker trial 2, finding 6: whoever owns the folder a CSV sits in (a shared drop
    folder) moves the batch's own directory away and puts a link to the victim's in its
    place, with files of the same names. The batch keeps reading from the directory it
    started with: the victim's file is never attached."""
    drop = tmp_path / "share"
    d = drop / "d"
    d.mkdir(parents=True)
    victim = tmp_path / "victim"
    victim.mkdir()
    secret = f"victim-{uuid.uuid4()}".encode()
    (victim / "secret.txt").write_bytes(secret)
    (d / "secret.txt").write_bytes(b"harmless")
    mark = f"dswap-{uuid.uuid4()}"
    rows = _rows(d / "rows.jsonl", ["secret.txt"] * 3, mark)
    real_create = command.ClientBatchApi.create
    swapped: list[bool] = []

    def create(self, message):
        if not swapped:  # after the rows were checked, before the first is read
            os.rename(d, drop / "d.old")
            d.symlink_to(victim)
            swapped.append(True)
        return real_create(self, message)

    monkeypatch.setattr(command.ClientBatchApi, "create", create)
    res = _send(sandbox, rows, "--concurrency", "1")
    assert swapped and res.exit_code == 0, res.output
    assert [r["status"] for r in _by_row(res.stdout).values()] == ["accepted"] * 3
    assert _leaked(sandbox, secret) == []
    assert _leaked(sandbox, b"harmless")  # what it attached: its own directory's file


def test_a_file_removed_after_the_check_fails_its_row_only(
    sandbox: Sandbox, shared: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    d, _ = shared
    (d / "gone.txt").write_bytes(b"here at first")
    mark = f"gone-{uuid.uuid4()}"
    rows = _rows(d / "rows.jsonl", ["gone.txt", "good.txt"], mark)
    real_create = command.ClientBatchApi.create

    def removing(self, message):
        (d / "gone.txt").unlink(missing_ok=True)
        return real_create(self, message)

    monkeypatch.setattr(command.ClientBatchApi, "create", removing)
    res = _send(sandbox, rows, "--concurrency", "1")
    assert "Traceback" not in res.output and "a bug" not in res.stderr
    rows_out = _by_row(res.stdout)
    assert rows_out[1]["status"] == "failed" and "gone.txt" in rows_out[1]["error"]
    assert rows_out[2]["status"] == "accepted"
    assert res.exit_code == 2


@pytest.mark.parametrize(
    ("make", "cell", "needle"),
    [
        # a link pointing inside the directory is refused too: the path is opened without
        # following any link, so what is checked is what is read
        (lambda d: (d / "in.txt").symlink_to(d / "good.txt"), "in.txt", "symbolic link"),
        (lambda d: (d / "dirlink").symlink_to(d / "sub"), "dirlink/inner.txt", "symbolic link"),
        (lambda d: (d / "out.txt").symlink_to(d.parent / "secret.txt"), "out.txt",
         "symbolic link"),
        (lambda d: (d / "loop").symlink_to(d / "loop"), "loop", "symbolic link"),
        (lambda d: None, "../secret.txt", "outside the input file's directory"),
        (lambda d: None, "sub/../../secret.txt", "outside the input file's directory"),
        (lambda d: None, "/etc/hostname", "outside the input file's directory"),
        (lambda d: None, "sub", "not a regular file"),
        (lambda d: os.mkfifo(d / "fifo"), "fifo", "not a regular file"),
        (lambda d: None, "missing.txt", "No such file"),
        (lambda d: None, "x" * 300 + ".txt", "File name too long"),
        (lambda d: None, "good.txt/more", "Not a directory"),
        (lambda d: None, "nul\x00.txt", "NUL"),
    ],
)  # fmt: skip
def test_attachment_paths_that_cannot_be_read_safely_are_invalid_rows(
    sandbox: Sandbox, shared: tuple[Path, bytes], make, cell: str, needle: str
) -> None:
    d, secret = shared
    make(d)
    mark = f"bad-{uuid.uuid4()}"
    rows = _rows(d / "rows.jsonl", [cell, "good.txt", "sub/inner.txt"], mark)
    res = _send(sandbox, rows)
    assert "Traceback" not in res.output and "a bug" not in res.stderr, res.stderr
    out = _by_row(res.stdout)
    assert out[1]["status"] == "invalid", out[1]
    assert needle in out[1]["error"] and "column attachments" in out[1]["error"]
    assert out[2]["status"] == "accepted" and out[3]["status"] == "accepted"
    assert res.exit_code == 2
    assert _leaked(sandbox, secret) == []
