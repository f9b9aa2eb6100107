"""Row identities (outkit_cli/batch/identity.py, docs/batch.md "Exactly once"): the rule,
checked against a plain dictionary implementation of it, and the memory it takes per row."""

from __future__ import annotations

import random
import tracemalloc

import pytest

from outkit_cli.batch.identity import PREFIX, DigestTable, RowIdentities


def _reference(rows: list[dict[str, str]]) -> list[str]:
    """The rule with dictionaries: the n-th row of one content (n >= 2) gets `-n`."""
    ids = RowIdentities({})
    seen: dict[str, int] = {}
    names = []
    for line, fields in enumerate(rows, start=2):
        name = ids.identity(line, fields)
        base = name.split("-")[1]
        seen[base] = seen.get(base, 0) + 1
        names.append(PREFIX + base + (f"-{seen[base]}" if seen[base] > 1 else ""))
    return names


@pytest.mark.parametrize("expected", [0, 5000])
def test_repeated_rows_are_numbered_in_file_order_across_table_growth(expected: int) -> None:
    """5,000 rows drawn from 1,500 contents: the tables grow past their first size (or are
    sized ahead), and every row gets the identity the rule gives it."""
    rng = random.Random(7)
    rows = [{"to": f"p{rng.randrange(1500)}@example.com"} for _ in range(5000)]
    ids = RowIdentities({}, expected_rows=expected)
    names = [ids.identity(line, fields) for line, fields in enumerate(rows, start=2)]
    assert names == _reference(rows)
    assert len(set(names)) == len(names)
    assert all(ids.present(name) for name in names)
    assert not ids.present(names[0] + "-9999")
    assert not ids.present(PREFIX + "a" * 24)


def test_own_ids_repeated_are_refused_naming_the_first_line() -> None:
    ids = RowIdentities({})
    for line in range(2, 3002):
        assert ids.identity(line, {"id_from_submitter": f"ref-{line}"}) == f"ref-{line}"
    with pytest.raises(ValueError, match="'ref-1500' is also line 1500's"):
        ids.identity(4000, {"id_from_submitter": "ref-1500"})
    assert ids.identity(1500, {"id_from_submitter": "ref-1500"}) == "ref-1500"  # same line
    assert ids.present("ref-2999") and not ids.present("ref-9999")


def test_digest_table_numbers_and_keys() -> None:
    table = DigestTable(numbered=True)
    for key in range(1, 3000):
        table.put(key * 0x9E3779B97F4A7C15 % 2**64 or 1, key + 7)
    assert all(
        table.get(key * 0x9E3779B97F4A7C15 % 2**64 or 1) == key + 7 for key in range(1, 3000)
    )
    assert table.get(12345) == 0


def test_memory_per_row_is_a_fixed_size_entry() -> None:
    """What 20,000 distinct rows leave behind: the tables' arrays (8 bytes a slot, sized
    for the count given), not an object per row."""
    n = 20_000
    ids = RowIdentities({}, expected_rows=n)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for line in range(2, n + 2):
            ids.identity(line, {"to": f"person-{line}@example.com", "data.name": "P"})
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown / n < 4  # bytes per row: the table was sized before the first row
