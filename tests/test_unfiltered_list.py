"""The hosted API documents no filters on `GET /v1/messages` (reference/outkit-facts.md): it
may answer its recent messages whatever `id_from_submitter` asks. The sandbox filters, so a
small loopback server plays a hosted API that ignores them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import run
from tests.netservers import QuietHandler, serving
from tests.test_client import env_for

UNRELATED = {"id": "m-old", "id_from_submitter": "someone-else", "status": "delivered",
             "type": "email", "to": "old@example.com"}  # fmt: skip


@pytest.fixture
def ignoring_api() -> Iterator[tuple[str, list[str]]]:
    """(API URL, the methods of the requests it got); lists always answer UNRELATED."""
    seen: list[str] = []
    created: list[int] = []

    class Handler(QuietHandler):
        def _answer(self, payload: Any) -> None:
            self.send_json(200, {"data": payload})

        def do_GET(self) -> None:
            seen.append("GET")
            self._answer([UNRELATED])

        def do_POST(self) -> None:
            body = json.loads(self.read_body())
            seen.append("POST")
            created.append(1)
            self._answer({**body["message"], "id": f"m-{len(created)}", "status": "received"})

    with serving(Handler) as origin:
        yield f"{origin}/v1", seen


def test_a_batch_neither_skips_nor_sends_rows_a_filterless_list_cannot_tell(
    ignoring_api: tuple[str, list[str]], tmp_path: Path
) -> None:
    """The list names another message: the rows are not taken for sent, and not sent
    either, since the list cannot show they were never sent (docs/batch.md): unknown
    until --resend-unknown."""
    url, seen = ignoring_api
    rows = tmp_path / "rows.csv"
    rows.write_text("to,subject\nada@example.com,Hi\nbob@example.com,Hi\n")
    args = ("send", "--batch", str(rows), "--project", "acme", "--text-body", "hello")
    result = run(*args, env=env_for(url))
    assert result.exit_code == 8, result.stderr
    outcomes = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(o["status"] for o in outcomes) == ["unknown", "unknown"]
    assert "ignores the id_from_submitter filter" in outcomes[0]["error"]
    assert seen.count("POST") == 0
    assert "warning: the server at 127.0.0.1" in result.stderr
    result = run(*args, "--resend-unknown", env=env_for(url))
    assert result.exit_code == 0, result.stderr
    outcomes = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(o["status"] for o in outcomes) == ["accepted", "accepted"]
    assert seen.count("POST") == 2


def test_get_by_id_from_submitter_shows_only_that_message(
    ignoring_api: tuple[str, list[str]],
) -> None:
    url, _ = ignoring_api
    result = run("get", "--id-from-submitter", "mine", "--json", env=env_for(url))
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == []
    # the check `send` advises after a lost answer: an empty list is not "never sent"
    assert result.stderr.startswith("warning: the server ignored the id_from_submitter")
    assert "may still exist" in result.stderr
