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
        # raw for scripts; escaped when stdout is a terminal (design.md, "Machine output")
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


def print_table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[tuple[str, str]],
    *,
    title: str | None = None,
    formatters: Mapping[str, Callable[[Any], str]] | None = None,
) -> None:
    """A rich table; ``columns`` are (field, heading) pairs."""
    from rich.markup import escape
    from rich.table import Table

    formatters = formatters or {}
    table = Table(title=title, show_edge=False, header_style="bold")
    for _, heading in columns:
        table.add_column(heading, overflow="fold")
    for row in rows:
        cells = []
        for name, _ in columns:
            fmt = formatters.get(name)
            cells.append(fmt(row.get(name)) if fmt else escape(shown(row.get(name))))
        table.add_row(*cells)
    stdout_console().print(table)


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
