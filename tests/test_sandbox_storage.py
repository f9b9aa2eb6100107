"""Storage and answers bounded (issue 9 part 4): list answers capped in size and paged,
the --max-storage quota (507, and back once space is freed), a disk that fails writes,
private database files, a warning for a data dir open to others."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from outkit_cli.sandbox.storage import parse_size
from tests.helpers import run
from tests.sandbox_fixture import Sandbox, launch

Start = Callable[..., Sandbox]


def _message(text: str, **extra: Any) -> dict[str, Any]:
    return {"message": {"type": "email", "to": "ada@example.com", "project": "demo",
                        "subject": "s", "text_body": text, **extra}}  # fmt: skip


def test_a_list_answer_is_capped_in_size_and_pages_on(start_sandbox: Start) -> None:
    box = start_sandbox()
    ids = []
    for i in range(3):  # 3.5 MiB each: the 8 MiB cap holds two
        status, doc = box.request("POST", "/messages", _message(str(i) * (3_500_000)))
        assert status == 200, doc
        ids.append(doc["data"]["id"])
    status, headers, doc = box.exchange("GET", "/messages?limit=30")
    assert status == 200
    assert [m["id"] for m in doc["data"]] == ids[::-1][:2]
    link = headers["link"]
    assert link.startswith("</v1/messages?") and link.endswith('>; rel="next"')
    assert f"before={ids[1]}" in link and "limit=30" in link
    status, headers, doc = box.exchange("GET", f"/messages?limit=30&before={ids[1]}")
    assert [m["id"] for m in doc["data"]] == [ids[0]] and "link" not in headers
    status, _, doc = box.exchange("GET", "/messages?before=no-such-id")
    assert status == 422 and "before" in doc["error"]["message"]
    # `outkit get` follows the pages up to its --limit (newcomer trial: it listed the first
    # page only, 33 of 207 messages, and said nothing)
    res = run("get", "--limit", "30", "--field", "id", env=box.env())
    assert res.exit_code == 0, res.stderr
    assert res.stdout.split() == ids[::-1]
    res = run("get", "--limit", "2", "--field", "id", env=box.env())
    assert res.stdout.split() == ids[::-1][:2]


def test_max_storage_refuses_with_507_and_recovers_when_space_is_freed(
    start_sandbox: Start,
) -> None:
    box = start_sandbox(extra_args=("--max-storage", "600K"))
    statuses, stored = [], []
    for _ in range(20):
        status, doc = box.request("POST", "/messages", _message("x" * 100_000))
        statuses.append(status)
        if status != 200:
            break
        stored.append(doc["data"]["id"])
    assert statuses[-1] == 507 and set(statuses[:-1]) == {200}, statuses
    err = doc["error"]
    assert err["code"] == "insufficient_storage"
    assert "--max-storage (600.0 KiB)" in err["message"]
    # reading goes on; a message already there is still served
    assert box.request("GET", "/messages?limit=1")[0] == 200
    for message_id in stored:  # delivered: no copy is still to be written (a loaded
        box.wait_done(message_id)  # machine delivered the last ones after the unlinking)
    for path in (box.outbox() / "new").iterdir():  # free space: delivered copies go
        path.unlink()
    for _ in range(100):  # the use is measured again within a second
        status, doc = box.request("POST", "/messages", _message("small"))
        if status == 200:
            break
    assert status == 200, doc
    assert "Traceback" not in box.log()


@pytest.mark.parametrize(
    ("text", "size"),
    [("500M", 500 * 1024**2), ("2G", 2 * 1024**3), ("1.5KiB", 1536), ("1048576", 1048576),
     ("0", 0)],
)  # fmt: skip
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_a_bad_size_is_a_usage_error(tmp_path: Path) -> None:
    from tests.helpers import run

    result = run("serve", "--max-storage", "lots", "--data-dir", str(tmp_path / "d"))
    assert result.exit_code == 2 and "--max-storage" in result.stderr
    assert "expected a size such as 500M" in result.stderr


def test_a_disk_that_refuses_writes_is_a_named_error_not_a_500(tmp_path: Path) -> None:
    # RLIMIT_FSIZE stands in for a full disk: writes past 3 MiB fail (EFBIG), which SQLite
    # reports as an I/O error. The sandbox answers 503 or 507 naming it, and keeps serving.
    box = launch(tmp_path / "data", extra_args=("--max-storage", "0"), fsize=3 * 1024 * 1024)
    try:
        statuses = []
        for _ in range(12):
            status, doc = box.request("POST", "/messages", _message("y" * 400_000))
            statuses.append(status)
            if status != 200:
                break
        assert statuses[-1] in (503, 507), statuses
        assert doc["error"]["code"] in ("storage_unavailable", "insufficient_storage")
        assert str(box.data_dir) in doc["error"]["message"]
        assert box.request("GET", "/messages?limit=1")[0] == 200
        assert "Traceback" not in box.log() and "internal error" not in box.log()
    finally:
        box.stop()


def test_database_files_are_private_in_an_existing_open_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)
    db = data / "sandbox.sqlite3"
    db.touch()
    os.chmod(db, 0o644)  # left by an older version, or created under a loose umask
    old = os.umask(0o022)
    try:
        box = launch(data)
    finally:
        os.umask(old)
    try:
        status, _ = box.request("POST", "/messages", _message("hello"))
        assert status == 200
        for name in ("sandbox.sqlite3", "sandbox.sqlite3-wal", "sandbox.sqlite3-shm"):
            assert stat.S_IMODE((data / name).stat().st_mode) == 0o600, name
        log = box.log()
        assert f"warning: the data dir {data} is open to other users (mode 0755)" in log
        assert f"chmod 700 {data}" in log
    finally:
        box.stop()


def test_a_private_data_dir_draws_no_warning(start_sandbox: Start) -> None:
    box = start_sandbox()
    assert "open to other users" not in box.log()


def test_a_symlinked_database_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    other = tmp_path / "someone-elses.db"
    other.write_bytes(b"")
    (data / "sandbox.sqlite3").symlink_to(other)
    with pytest.raises(RuntimeError, match="symbolic link"):
        launch(data)
