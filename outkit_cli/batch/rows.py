"""Reading batch input: CSV (header row) or JSON Lines, streamed row by row.

Each row becomes a partial message (fields and `data` locals) with the line it started on,
or a `BadRow` naming what is wrong. Nothing here holds more than one row in memory.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from outkit_cli.errors import UsageError
from outkit_cli.message import BOOL_FIELDS, STRING_FIELDS

# How much of the input names it: the auto ids and the journal are keyed on this.
FINGERPRINT_BYTES = 64 * 1024

TRUE_WORDS = {"true", "1", "yes", "y", "on"}
FALSE_WORDS = {"false", "0", "no", "n", "off"}


@dataclass
class Row:
    line: int
    fields: dict[str, Any]


@dataclass
class BadRow:
    line: int
    error: str


class _PrefixedStream(io.RawIOBase):
    """The bytes already read for the fingerprint, then the rest of the stream."""

    def __init__(self, prefix: bytes, rest: IO[bytes]) -> None:
        self._prefix = memoryview(prefix)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._prefix:
            n = min(len(buffer), len(self._prefix))
            buffer[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        data = self._rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


@dataclass
class BatchInput:
    """An open batch source: its name, format, fingerprint and a text stream."""

    name: str
    path: Path | None
    format: str
    fingerprint: str
    stream: IO[str]
    raw: IO[bytes]  # the undecoded source, whose position tells the progress

    def close(self) -> None:
        self.stream.close()


def open_input(source: str, fmt: str | None) -> BatchInput:
    """Open FILE (or `-` for stdin), fingerprint its first bytes and pick the format."""
    if source == "-":
        raw: IO[bytes] = sys.stdin.buffer
        path = None
    else:
        path = Path(source)
        try:
            raw = path.open("rb")
        except FileNotFoundError:
            raise UsageError(f"batch file {source} does not exist") from None
        except IsADirectoryError:
            raise UsageError(f"batch file {source} is a directory") from None
        except OSError as exc:
            raise UsageError(f"cannot read batch file {source}: {exc.strerror}") from None
    prefix = raw.read(FINGERPRINT_BYTES)
    fingerprint = hashlib.sha256(prefix).hexdigest()[:16]
    fmt = fmt or _guess_format(path, prefix)
    buffered = io.BufferedReader(_PrefixedStream(prefix, raw))
    stream = io.TextIOWrapper(buffered, encoding="utf-8-sig", newline="")
    return BatchInput(source if path else "<stdin>", path, fmt, fingerprint, stream, raw)


def _guess_format(path: Path | None, prefix: bytes) -> str:
    if path is not None:
        suffix = path.suffix.lower()
        if suffix == ".csv":
            return "csv"
        if suffix in (".jsonl", ".ndjson"):
            return "jsonl"
    # stdin or an unknown extension: a JSON object per line starts with '{'
    first = prefix.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if first == b"{":
        return "jsonl"
    if path is not None and path.suffix:
        raise UsageError(
            f"cannot tell the format of {path} from its extension; pass --batch-format csv|jsonl"
        )
    return "csv"


def parse_bool(value: str) -> bool:
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(f"{value!r} is not true or false")


def read_rows(source: BatchInput) -> Iterator[Row | BadRow]:
    if source.format == "csv":
        return _csv_rows(source.stream)
    if source.format == "jsonl":
        return _jsonl_rows(source.stream)
    raise UsageError(f"unknown batch format {source.format!r} (choose csv or jsonl)")


def _column_kind(column: str) -> str | None:
    if column in STRING_FIELDS or column in BOOL_FIELDS or column == "data":
        return column
    if column.startswith("data.") and len(column) > 5:
        return "local"
    return None


def _csv_rows(stream: IO[str]) -> Iterator[Row | BadRow]:
    reader = csv.reader(stream, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        return
    except UnicodeDecodeError:
        raise UsageError("line 1: the input is not valid UTF-8") from None
    except csv.Error as exc:
        raise UsageError(f"line 1: the CSV header does not parse: {exc}") from None
    header = [h.strip() for h in header]
    unknown = [h for h in header if _column_kind(h) is None]
    if unknown:
        raise UsageError(
            f"line 1: unknown column {unknown[0]!r}: columns are message fields "
            f"({', '.join(STRING_FIELDS + BOOL_FIELDS)}), data.NAME for a template local, "
            "or data for a JSON object of locals"
        )
    if len(set(header)) != len(header):
        dup = next(h for h in header if header.count(h) > 1)
        raise UsageError(f"line 1: column {dup!r} appears twice")
    end = reader.line_num
    while True:
        start = end + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except UnicodeDecodeError:
            raise UsageError(f"line {start}: the input is not valid UTF-8") from None
        except csv.Error as exc:
            end = reader.line_num
            yield BadRow(start, f"does not parse as CSV: {exc}")
            continue
        end = reader.line_num
        if not cells or all(not c.strip() for c in cells):
            continue
        if len(cells) != len(header):
            yield BadRow(start, f"has {len(cells)} cells, the header has {len(header)}")
            continue
        yield _csv_row(start, header, cells)


def _csv_row(line: int, header: list[str], cells: list[str]) -> Row | BadRow:
    fields: dict[str, Any] = {}
    data: dict[str, Any] = {}
    for column, value in zip(header, cells, strict=True):
        if value == "":
            continue  # an empty cell inherits the command's default
        if column.startswith("data."):
            data[column[5:]] = value
        elif column == "data":
            try:
                obj = json.loads(value)
            except json.JSONDecodeError as exc:
                return BadRow(line, f"column data is not valid JSON: {exc.msg}")
            except RecursionError:
                return BadRow(line, "column data is JSON nested too deeply")
            if not isinstance(obj, dict):
                return BadRow(line, "column data must be a JSON object")
            data = {**obj, **data}
        elif column in BOOL_FIELDS:
            try:
                fields[column] = parse_bool(value)
            except ValueError as exc:
                return BadRow(line, f"column {column}: {exc}")
        else:
            fields[column] = value
    if data:
        fields["data"] = data
    return Row(line, fields)


def _jsonl_rows(stream: IO[str]) -> Iterator[Row | BadRow]:
    line_no = 0
    while True:
        line_no += 1
        try:
            text = stream.readline()
        except UnicodeDecodeError:
            raise UsageError(f"line {line_no}: the input is not valid UTF-8") from None
        if not text:
            return
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            yield BadRow(line_no, f"is not valid JSON: {exc.msg} (column {exc.colno})")
            continue
        except RecursionError:
            yield BadRow(line_no, "is JSON nested too deeply")
            continue
        if not isinstance(obj, dict):
            yield BadRow(line_no, "is not a JSON object")
            continue
        yield _json_row(line_no, obj)


def _json_row(line: int, obj: dict[str, Any]) -> Row | BadRow:
    for key, value in obj.items():
        if key == "data":
            if not isinstance(value, dict):
                return BadRow(line, "field data must be an object")
        elif key in BOOL_FIELDS:
            if not isinstance(value, bool):
                return BadRow(line, f"field {key} must be true or false")
        elif key in STRING_FIELDS:
            if value is not None and not isinstance(value, str):
                return BadRow(line, f"field {key} must be a string")
        else:
            return BadRow(line, f"unknown field {key!r}")
    return Row(line, {k: v for k, v in obj.items() if v is not None})


def auto_id(fingerprint: str, line: int) -> str:
    """The `id_from_submitter` for a row that has none: same file, same row, same id."""
    return f"outkit-batch-{fingerprint}-{line}"
