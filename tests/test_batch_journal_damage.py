"""A damaged batch journal (the user's own file: edited, truncated, written by hand) ends
in one error, exit 2, and sends nothing: a record of a shape the writer never makes gave
exit 1 (IndexError on "rows": [[1]]) or, with a non-string result status, made the row be
sent again without a lookup (attacker trial)."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest

from tests.batch_helpers import batch, held, people, write_csv
from tests.sandbox_fixture import Sandbox

# how the journal's last record (a result: accepted) is damaged
MUTATIONS = {
    "pending rows a string": ("whole", {"type": "pending", "rows": "\x1b[31m"}),
    "pending row too short": ("whole", {"type": "pending", "rows": [[1]]}),
    "pending row empty": ("whole", {"type": "pending", "rows": [[]]}),
    "pending row too long": ("whole", {"type": "pending", "rows": [[1, "k", "i", "x"]]}),
    "pending row an object": ("whole", {"type": "pending", "rows": [{"line": 1}]}),
    "pending line a string": ("whole", {"type": "pending", "rows": [["1", "k"]]}),
    "pending line a bool": ("whole", {"type": "pending", "rows": [[True, "k"]]}),
    "pending line negative": ("whole", {"type": "pending", "rows": [[-1, "k"]]}),
    "pending identity a number": ("whole", {"type": "pending", "rows": [[1, 5]]}),
    "pending id_from_submitter a list": ("whole", {"type": "pending", "rows": [[1, "k", ["x"]]]}),
    "pending without rows": ("whole", {"type": "pending"}),
    "result status a number": {"status": 7},
    "result status a list": {"status": []},
    "result status null": {"status": None},
    "result status unheard of": {"status": "sent"},
    "result key a number": {"key": 3},
    "result row a string": {"row": "2"},
    "result row a float": {"row": 2.5},
    "result without status": "status",
    "result without key": "key",
    "unknown id_from_submitter a dict": {"status": "unknown", "id_from_submitter": {}},
    "resend generation a string": ("whole", {"type": "resend", "generation": "2"}),
    "finished generation null": ("whole", {"type": "finished", "generation": None}),
    "record type unheard of": ("whole", {"type": "sent", "rows": []}),
    "record without type": ("whole", {"rows": []}),
    "record a list": ("whole", [1, 2]),
    "record a string": ("whole", "x"),
    # json.loads raises RecursionError, not ValueError, on deep nesting: it was exit 1
    "record nested too deeply": ("text", "[" * 200_000 + "]" * 200_000),
    "rows nested too deeply": (
        "text",
        '{"type":"pending","rows":' + "[" * 200_000 + "]" * 200_000 + "}",
    ),
}


def mutate(record: dict, how: object) -> object:
    """The record as the table says: ("whole", X) is X instead, a dict is merged in, a
    string is a field left out."""
    if isinstance(how, tuple):
        return how[1]
    if isinstance(how, dict):
        return {**record, **how}
    return {k: v for k, v in record.items() if k != how}


@pytest.fixture(scope="module")
def journalled(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A finished two-row batch's input and journal, to copy and damage."""
    tag = f"jd-{uuid.uuid4().hex[:8]}"
    src = write_csv(tmp_path_factory.mktemp("journal") / "people.csv", people(2, tag))
    code, rows, err = batch(src, env=sandbox.env())
    assert code == 0, err
    assert [r["status"] for r in rows] == ["accepted", "accepted"]
    return src, tag


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_a_damaged_record_is_refused_and_nothing_is_sent(
    name: str, sandbox: Sandbox, journalled: tuple[Path, str], tmp_path: Path
) -> None:
    original, tag = journalled
    src = tmp_path / "people.csv"
    shutil.copy(original, src)
    journal = src.with_name(src.name + ".outkit-journal")
    lines = Path(str(original) + ".outkit-journal").read_text().splitlines()
    last = json.loads(lines[-1])
    assert last["type"] == "result" and last["status"] == "accepted"
    how = MUTATIONS[name]
    text = how[1] if isinstance(how, tuple) and how[0] == "text" else None
    lines[-1] = text if text is not None else json.dumps(mutate(last, how))
    journal.write_text("\n".join(lines) + "\n")
    before = held(sandbox, tag)
    code, rows, err = batch(src, env=sandbox.env())
    assert (code, rows) == (2, []), err
    assert err.strip() == f"error: batch journal {journal} is damaged; move it aside"
    assert held(sandbox, tag) == before  # nothing sent again


def test_the_untouched_journal_still_skips_every_row(
    sandbox: Sandbox, journalled: tuple[Path, str], tmp_path: Path
) -> None:
    original, tag = journalled
    src = tmp_path / "people.csv"
    shutil.copy(original, src)
    shutil.copy(str(original) + ".outkit-journal", str(src) + ".outkit-journal")
    code, rows, err = batch(src, env=sandbox.env())
    assert code == 0, err
    assert [r["status"] for r in rows] == ["skipped", "skipped"]
    assert sum(held(sandbox, tag).values()) == 2
