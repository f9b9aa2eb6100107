"""The --max-storage quota against hostile use (attacker trial 1, findings 9 and 10):
what renders produce is counted before it is stored, and a clear frees the quota again."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from outkit_cli.sandbox.storage import DB_FILES, tree_size
from tests.sandbox_fixture import Sandbox
from tests.test_inbox import csrf_of, fetch

Start = Callable[..., Sandbox]
MiB = 1024 * 1024
# what a data dir may pass --max-storage by (docs/sandbox.md): SQLite's pages and
# headers the quota does not count to the byte
MARGIN = 2 * MiB


def on_disk(data_dir: Path) -> int:
    """The bytes the quota governs, as the file system has them (no live-page reckoning)."""
    total = tree_size(data_dir / "outbox")
    for name in DB_FILES:
        path = data_dir / name
        total += path.stat().st_size if path.exists() else 0
    return total


def nested_each(items: int) -> dict[str, Any]:
    """A ~1 KB create whose HTML and text parts each render items**3 * 100 characters."""
    lit = "0123456789" * 10
    template = "{{#each a}}{{#each ../a}}{{#each ../../a}}" + lit + "{{/each}}{{/each}}{{/each}}"
    message = {"project": "demo", "type": "email", "to": "a@example.com", "subject": "x",
               "html_template_body": template, "text_template_body": template,
               "data": {"a": list(range(items))}}  # fmt: skip
    return {"message": message}


def test_hostile_renders_never_take_the_data_dir_past_the_quota(start_sandbox: Start) -> None:
    box = start_sandbox(extra_args=("--max-storage", "30M"))
    ids = []
    for _ in range(8):  # each renders 2 x 2.2 MB: on disk (row, WAL, .eml) about 10 MB
        status, doc = box.request("POST", "/messages", nested_each(28))
        assert status == 200, doc
        ids.append(doc["data"]["id"])
    peak = 0
    done = []
    for message_id in ids:
        done.append(box.wait_done(message_id, timeout=120))
        peak = max(peak, on_disk(box.data_dir))
    peak = max(peak, on_disk(box.data_dir))
    assert peak <= 30 * MiB + MARGIN, peak
    statuses = [m["status"] for m in done]
    assert "delivered" in statuses, statuses  # the quota lets in what fits
    refused = [m for m in done if m["status"] == "render_error"]
    assert refused, statuses
    for m in refused:
        assert "--max-storage (30.0 MiB)" in m["status_message"], m["status_message"]
        assert m["html_body"] is None and m["text_body"] is None  # nothing rendered kept
    assert "Traceback" not in box.log()


def test_clearing_the_inbox_lets_creates_in_again_after_507(start_sandbox: Start) -> None:
    box = start_sandbox(extra_args=("--max-storage", "24M"))
    big = {"message": {"project": "demo", "type": "email", "to": "a@example.com",
                       "text_body": "a" * 3_000_000, "test": True}}  # fmt: skip
    for _ in range(40):
        status, doc = box.request("POST", "/messages", big)
        if status != 200:
            break
    assert status == 507, doc
    _, _, page = fetch(box, "/")
    status, _, _ = fetch(box, "/clear", method="POST", body=b"",
                         headers={"X-CSRF-Token": csrf_of(page)})  # fmt: skip
    assert status == 303
    deadline = time.monotonic() + 60  # the use is measured again about every second
    while True:
        status, doc = box.request("POST", "/messages", big)
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert status == 200, doc
    # and the freed space is really free: the quota fills again as much as before
    assert on_disk(box.data_dir) <= 24 * MiB + MARGIN
