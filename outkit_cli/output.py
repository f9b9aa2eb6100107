"""Every way a command shows data: rich tables for people, JSON and raw fields for scripts.

`--json` and `--field` behave the same on every command (one decorator). rich is imported
only when a table is actually drawn.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from outkit_cli.errors import UsageError
from outkit_cli.terminal import current as current_terminal
from outkit_cli.terminal import json_safe, one_line


class OutputSpec:
    """What --json / --field asked for. A plain class, not a dataclass: building one at
    import costs about a millisecond, and `outkit sign` is measured for startup."""

    __slots__ = ("fields", "json")

    def __init__(self, json: bool = False, fields: tuple[str, ...] = ()) -> None:
        self.json = json
        self.fields = tuple(fields)

    @property
    def machine(self) -> bool:
        return self.json or bool(self.fields)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, OutputSpec):
            return NotImplemented
        return (self.json, self.fields) == (other.json, other.fields)

    def __hash__(self) -> int:
        return hash((self.json, self.fields))

    def __repr__(self) -> str:
        return f"OutputSpec(json={self.json!r}, fields={self.fields!r})"


def color_enabled() -> bool:
    return current_terminal().color


def stdout_console() -> Any:
    return current_terminal().console()


def stderr_console() -> Any:
    return current_terminal().console(stderr=True)


def shown(value: Any) -> str:
    """A value in a people's view: field_value on one line, controls escaped."""
    return one_line(field_value(value))


def mask(value: str | None) -> str:
    """A secret as shown to people: wholly hidden, the same width whatever its length
    (no leading characters, no hint of its size)."""
    return "********" if value else ""


def field_value(value: Any) -> str:
    """A value as a script wants it: raw strings, JSON for structures, empty for null."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        import json

        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return str(value)


def print_json(value: Any) -> None:
    import json  # here, not at the top: the human views of fast commands never need it

    sys.stdout.write(json_safe(json.dumps(value, indent=2, ensure_ascii=False)) + "\n")
    sys.stdout.flush()


def print_fields(items: Iterable[Mapping[str, Any]], names: Sequence[str]) -> None:
    for item in items:
        for name in names:
            if name not in item:
                known = ", ".join(sorted(item))
                raise UsageError(f"unknown field {name!r} (fields: {known})")
        # raw for scripts; escaped when stdout is a terminal (docs/get.md)
        values = (current_terminal().raw(field_value(item[n])) for n in names)
        sys.stdout.write("\t".join(values) + "\n")
    sys.stdout.flush()


def plain_rows(rows: Sequence[Sequence[str]]) -> str:
    """Columns aligned with two spaces, no box drawing: for pipes, grep and awk. Cells are
    shown on one line with controls escaped (a people's view, even on a pipe)."""
    rows = [[one_line(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


# Column rules for print_table: KEEP is never shortened (ids, keys, URLs: people copy
# them), SHRINK gives way first (cut with "…"), OPTIONAL is left out, with a note, when
# shortening is not enough.
KEEP, SHRINK, OPTIONAL = "keep", "shrink", "optional"
MIN_SHRUNK = 10  # narrower than this a shortened column says too little to be worth it


def fit_columns(
    headings: Sequence[str],
    cells: Sequence[Sequence[str]],
    rules: Sequence[str],
    width: int,
    measure: Callable[[str], int] = len,
) -> tuple[list[int], list[int]]:
    """Column widths for a table that fits ``width`` terminal columns.

    Args:
        headings: one per column.
        cells: rows of cell texts as shown (one line each).
        rules: one of KEEP, SHRINK, OPTIONAL per column.
        width: the terminal's width in columns.
        measure: a text's width in terminal cells (rich's cell_len: CJK and emoji take
            two).

    Returns:
        (widths, dropped): a width per column (0 for one left out), and the indexes of
        the columns left out. SHRINK columns lose width first, down to MIN_SHRUNK; then
        OPTIONAL columns are left out, last one first. A table of KEEP columns alone may
        still be wider than ``width``: it is never cut.
    """
    natural = [
        max(measure(h), *(measure(row[i]) for row in cells)) if cells else measure(h)
        for i, h in enumerate(headings)
    ]
    dropped: list[int] = []
    while True:
        active = [i for i in range(len(headings)) if i not in dropped]
        widths = [natural[i] if i in active else 0 for i in range(len(headings))]
        # a table without edges: one space either side of a cell, a rule between cells
        over = sum(widths) + 3 * len(active) - 1 - width
        optional = [i for i in active if rules[i] == OPTIONAL]
        # down to MIN_SHRUNK while a column can still be left out; past that, to the
        # heading's width: a cut recipient is better than a wrapped id
        least = MIN_SHRUNK if optional else 3
        while over > 0:
            floor = {i: min(natural[i], max(least, len(headings[i]))) for i in active}
            give = [i for i in active if rules[i] == SHRINK and widths[i] > floor[i]]
            if not give:
                break
            widest = max(give, key=lambda i: widths[i])
            widths[widest] -= 1
            over -= 1
        if over <= 0 or not optional:
            return widths, dropped
        dropped.append(optional[-1])


def print_table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[tuple[str, str]],
    *,
    rules: Mapping[str, str] | None = None,
    formatters: Mapping[str, Callable[[Any], str]] | None = None,
    styles: Mapping[str, Callable[[Any], str | None]] | None = None,
) -> None:
    """A table for a terminal that never wraps a cell: ``columns`` are (field, heading)
    pairs, ``rules`` a rule per field (default SHRINK), ``formatters`` the text of a
    field's cells (default `shown`), ``styles`` a rich style per cell (or None).

    Columns left out to fit the terminal are named on stderr, so a missing column is
    never a silent one.
    """
    from rich.cells import cell_len
    from rich.table import Table
    from rich.text import Text

    rules = rules or {}
    formatters = formatters or {}
    styles = styles or {}
    names = [name for name, _ in columns]
    headings = [heading for _, heading in columns]
    texts = [[formatters.get(n, shown)(row.get(n)) for n in names] for row in rows]
    console = stdout_console()
    widths, dropped = fit_columns(
        headings, texts, [rules.get(n, SHRINK) for n in names], console.width, cell_len
    )
    table = Table(show_edge=False, header_style="bold")
    kept = [i for i in range(len(names)) if i not in dropped]
    for i in kept:
        table.add_column(headings[i], no_wrap=True, overflow="ellipsis", width=widths[i])
    for row, cells in zip(rows, texts, strict=True):
        table.add_row(
            *(Text(cells[i], style=(styles[names[i]](row.get(names[i])) or "")
                   if names[i] in styles else "") for i in kept)
        )  # fmt: skip
    total = sum(widths) + 3 * len(kept) - 1
    if total > console.width:  # only KEEP columns left: the terminal may wrap, never cut
        console.width = total
    console.print(table)
    if dropped:
        left_out = ", ".join(headings[i] for i in sorted(dropped))
        it = "it" if len(dropped) == 1 else "them"
        stderr_console().print(
            f"note: {left_out} left out to fit {console.width} columns; a wider terminal or "
            f"--json shows {it}",
            markup=False,
            highlight=False,
        )


def print_record(
    record: Mapping[str, Any],
    names: Sequence[str],
    *,
    formatters: Mapping[str, Callable[[Any], str]] | None = None,
) -> None:
    """One object as aligned `field  value` lines."""
    from rich.markup import escape
    from rich.table import Table

    formatters = formatters or {}
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for name in names:
        value = record.get(name)
        fmt = formatters.get(name)
        table.add_row(name, fmt(value) if fmt else escape(shown(value)))
    stdout_console().print(table)


def emit(
    spec: OutputSpec,
    items: Sequence[Mapping[str, Any]],
    *,
    single: bool,
    human: Callable[[], None],
) -> None:
    """Print items in the chosen form; ``human`` draws the people's view."""
    if spec.json:
        print_json(items[0] if single and len(items) == 1 else list(items))
    elif spec.fields:
        print_fields(items, spec.fields)
    else:
        human()
