"""Reading batch input: CSV (header row) or JSON Lines, streamed row by row.

Each row becomes a partial message (fields and `data` locals) with the line it started on,
or a `BadRow` naming what is wrong. Nothing here holds more than one row in memory.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import itertools
import json
import os
import re
import stat
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from outkit_cli.errors import UsageError
from outkit_cli.message import BOOL_FIELDS, STRING_FIELDS, loads_strict

# How much of stdin names it: the default journal of stdin input is keyed on this.
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
    """An open batch source: its name, format, fingerprint, and its bytes, decoded line by
    line when rows are read (so that a bad byte is reported on its own line)."""

    name: str
    path: Path | None
    format: str
    fingerprint: str  # of the first bytes: names the journal of stdin input
    raw: IO[bytes]
    encoding: str = "utf-8-sig"
    delimiter: str | None = None  # CSV: None = detected from the header
    # (st_dev, st_ino) of a regular input file: what every path to it (symlinks, other
    # spellings) shares, so runs on one file meet at one lock (batch.locks.InputLock)
    file_id: tuple[int, int] | None = None

    def close(self) -> None:
        self.raw.close()


def open_input(
    source: str, fmt: str | None, *, encoding: str | None = None, delimiter: str | None = None
) -> BatchInput:
    """Open FILE (or `-` for stdin), fingerprint its first bytes and pick the format.

    Raises UsageError for a missing or unreadable file, an unknown or non-ASCII-compatible
    encoding, or a format that cannot be told."""
    codec = check_encoding(encoding)
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
    file_id = None
    if path is not None:
        # fstat of the file opened, not a second lookup of the path that could meet another
        st = os.fstat(raw.fileno())
        if stat.S_ISREG(st.st_mode):
            file_id = (st.st_dev, st.st_ino)
    prefix = raw.read(FINGERPRINT_BYTES)
    fingerprint = hashlib.sha256(prefix).hexdigest()[:16]
    fmt = fmt or _guess_format(path, prefix)
    buffered = io.BufferedReader(_PrefixedStream(prefix, raw))
    name = source if path else "<stdin>"
    return BatchInput(name, path, fmt, fingerprint, buffered, codec, delimiter, file_id)


SPOOL_KEEP_SECONDS = 24 * 3600  # a spool a killed run left behind is removed after this


def spool_stdin(source: BatchInput, directory: Path) -> tuple[BatchInput, Path]:
    """Standard input copied to a private file in `directory` (0600, a name of its own),
    so that a batch from stdin is read ahead like a file: its rows' key locks it against a
    run of the same rows from a file (batch.locks.RowsLock; attacker trial 2: a stdin run
    beside a file run sent 16 of 20 rows twice), a bad row is found before anything is
    sent, and the progress bar has a total. Returns the input reading from the copy (its
    name, format and fingerprint, which names the journal, are stdin's) and the copy's
    path, for `count_rows`; the caller removes it once counted. Spools older than a day
    (a run killed while copying) are removed first. Raises UsageError when the copy
    cannot be written (a full disk)."""
    import shutil
    import tempfile

    from outkit_cli.fsutil import remove_stale

    remove_stale(directory, older_than=SPOOL_KEEP_SECONDS)
    try:
        fd, name = tempfile.mkstemp(prefix="stdin-", dir=directory)  # 0600, O_EXCL
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(source.raw, out, 1024 * 1024)
        raw = open(name, "rb")  # noqa: SIM115 (closed with the input)
    except OSError as exc:
        raise UsageError(
            f"cannot copy the batch from stdin to {directory}: {exc.strerror or exc}"
        ) from None
    spooled = BatchInput(
        source.name, None, source.format, source.fingerprint, raw, source.encoding,
        source.delimiter,
    )  # fmt: skip
    source.close()
    return spooled, Path(name)


def check_encoding(name: str | None) -> str:
    """The codec for --encoding NAME (UTF-8, a BOM dropped, when None). Only encodings
    that keep ASCII as it is are accepted: rows are split at the byte b'\\n'."""
    if name is None:
        return "utf-8-sig"
    try:
        info = codecs.lookup(name)
    except LookupError:
        raise UsageError(f"--encoding {name}: unknown encoding") from None
    try:
        ascii_kept = '\n,;\t"{}'.encode(info.name, "replace") == b'\n,;\t"{}'
    except LookupError:  # rot13, hex, base64: codecs, but not of text
        raise UsageError(f"--encoding {name}: not a text encoding") from None
    if not ascii_kept:
        raise UsageError(
            f"--encoding {name}: not supported (rows are split at ASCII line ends): "
            "save the file as UTF-8"
        )
    return "utf-8-sig" if info.name == "utf-8" else info.name


# C1 control characters (U+0080-U+009F) are never text a person wrote: in a file read as
# latin-1 they are Windows-1252's quotes, dashes and euro sign (what Excel writes on
# Windows), which would reach recipients as invisible controls.
_C1_CONTROL = re.compile("[\x80-\x9f]")


def _decoded_lines(source: BatchInput) -> Iterator[str]:
    """The input's lines as text, each decoded on its own: a bad byte names its line.

    Raises UsageError for a byte the encoding cannot read and for a C1 control character
    (the file is in another encoding than the one it is read with)."""
    decoder = codecs.getincrementaldecoder(source.encoding)()
    for number, line in enumerate(source.raw, 1):
        try:
            text = decoder.decode(line)
        except UnicodeDecodeError as exc:
            raise UsageError(_decode_problem(number, exc, source.encoding)) from None
        control = _C1_CONTROL.search(text)
        if control:
            raise UsageError(_control_problem(number, control.group(), source.encoding))
        yield text


def _control_problem(line: int, char: str, encoding: str) -> str:
    shown = f"U+{ord(char):04X}"
    if codecs.lookup(encoding).name in ("iso8859-1", "latin-1"):
        try:
            meant = char.encode("latin-1").decode("cp1252")
        except UnicodeDecodeError:
            meant = ""
        as_cp1252 = f" ({meant!r} in Windows-1252)" if meant else ""
        return (
            f"line {line}: {shown} is a control character in {encoding}{as_cp1252}: files "
            "Excel saves on Windows are Windows-1252: pass --encoding cp1252"
        )
    return (
        f"line {line}: {shown} is a control character, not text: save the file as UTF-8, "
        "or pass --encoding with the encoding it was written in"
    )


def _decode_problem(line: int, exc: UnicodeDecodeError, encoding: str) -> str:
    bad = exc.object[exc.start : exc.end]
    shown = " ".join(f"0x{b:02x}" for b in bad[:4])
    if encoding == "utf-8-sig":
        return (
            f"line {line}: byte {shown} is not UTF-8: save the file as UTF-8, or pass "
            "--encoding cp1252 (Excel on Windows) or the encoding it was written in"
        )
    return f"line {line}: byte {shown} is not valid {encoding} (--encoding)"


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
    """The rows in file order. Raises UsageError (exit 2) for what spoils the whole file: a
    bad header, a byte the encoding cannot read (naming its line)."""
    if source.format == "csv":
        return _csv_rows(_decoded_lines(source), source.delimiter)
    if source.format == "jsonl":
        return _jsonl_rows(_decoded_lines(source))
    raise UsageError(f"unknown batch format {source.format!r} (choose csv or jsonl)")


def count_rows(
    path: Path, source: BatchInput, each: Callable[[Row | BadRow], None] | None = None
) -> int:
    """How many results reading `path` as `source` gives, in a pass of its own (streamed:
    constant memory); `each`, when given, sees every result. Reading the file ahead also
    finds a bad header or a byte the encoding cannot read before anything is sent
    (UsageError)."""
    try:
        raw = path.open("rb")
    except OSError as exc:
        raise UsageError(f"cannot read batch file {path}: {exc.strerror}") from None
    copy = BatchInput(
        source.name,
        path,
        source.format,
        source.fingerprint,
        raw,
        source.encoding,
        source.delimiter,
    )
    with raw:
        if each is None:
            return sum(1 for _ in read_rows(copy))
        n = 0
        for item in read_rows(copy):
            each(item)
            n += 1
        return n


# files to attach, `;`-separated paths relative to the input file (a list in JSONL)
ATTACHMENTS = "attachments"


def _column_kind(column: str) -> str | None:
    if column in STRING_FIELDS or column in BOOL_FIELDS or column in ("data", ATTACHMENTS):
        return column
    if column.startswith("data.") and len(column) > 5:
        return "local"
    return None


DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab"}
# Characters in one CSV cell. Python's csv module stops at 131,072 by default, which an
# order's `data` cell of 3,000 lines passes (newcomer trial); a request body is at most
# 10 MiB anyway (the sandbox's limit), so a cell larger than that could not be sent.
CSV_CELL_LIMIT = 10 * 1024 * 1024
_SEP_LINE = re.compile(r"sep=(.)")


def detect_delimiter(header_line: str) -> str:
    """The delimiter under which most of the header's cells are known columns (a comma
    when none fits better): what Excel writes depends on the locale (';' in most of
    Europe), and tab-separated exports are common."""
    best, best_known = ",", -1
    for delimiter in DELIMITERS:
        try:
            cells = next(csv.reader([header_line], delimiter=delimiter))
        except (csv.Error, StopIteration):
            continue
        known = sum(1 for c in cells if _column_kind(c.strip().lower()) is not None)
        if known > best_known:
            best, best_known = delimiter, known
    return best


def _other_delimiter(column: str, delimiter: str) -> str:
    """A hint when an unknown column looks like several joined by another delimiter."""
    for other, name in DELIMITERS.items():
        if other != delimiter and other in column:
            parts = [p.strip() for p in column.split(other)]
            if sum(1 for p in parts if _column_kind(p.lower()) is not None) >= 1:
                shown = "tab" if other == "\t" else repr(other)
                return f" (the header looks {name}-separated: pass --delimiter {shown})"
    return ""


def _case_hint(column: str) -> str:
    """A hint when an unknown column is a known one in other letter case (`To`)."""
    if column != column.lower() and _column_kind(column.lower()) is not None:
        return f" (column names are lower case: {column.lower()!r})"
    return ""


def _csv_rows(lines: Iterator[str], delimiter: str | None) -> Iterator[Row | BadRow]:
    try:
        first = next(lines)
    except StopIteration:
        return
    skipped = 0  # lines before the header
    hint = _SEP_LINE.fullmatch(first.rstrip("\r\n"))
    if hint:  # Excel's `sep=;` line names the delimiter
        delimiter = delimiter or hint.group(1)
        skipped = 1
        try:
            first = next(lines)
        except StopIteration:
            return
    if delimiter is None:
        delimiter = detect_delimiter(first)
    at = f"line {1 + skipped}"
    csv.field_size_limit(CSV_CELL_LIMIT)  # process-wide, and the same for every reader
    reader = csv.reader(itertools.chain([first], lines), delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:
        if "\r" in first.rstrip("\r\n"):
            raise UsageError(
                f"{at}: lines end in a lone carriage return (an old Mac format): save the "
                "file as CSV UTF-8"
            ) from None
        raise UsageError(f"{at}: the CSV header does not parse: {exc}") from None
    header = [h.strip() for h in header]
    while len(header) > 1 and header[-1] == "":
        header.pop()  # trailing separators (Excel): no column
    unknown = [h for h in header if _column_kind(h) is None]
    if unknown:
        raise UsageError(
            f"{at}: unknown column {unknown[0]!r}"
            f"{_other_delimiter(unknown[0], delimiter) or _case_hint(unknown[0])}: "
            f"columns are message fields ({', '.join(STRING_FIELDS + BOOL_FIELDS)}), "
            "data.NAME for a template local, data for a JSON object of locals, or attachments"
        )
    if len(set(header)) != len(header):
        dup = next(h for h in header if header.count(h) > 1)
        raise UsageError(f"{at}: column {dup!r} appears twice")
    end = reader.line_num + skipped
    while True:
        start = end + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            end = reader.line_num + skipped
            if "field larger than field limit" in str(exc):
                yield BadRow(start, f"a cell holds over {CSV_CELL_LIMIT:,} characters, more "
                             "than one request may carry")  # fmt: skip
            else:
                yield BadRow(start, f"does not parse as CSV: {exc}")
            continue
        end = reader.line_num + skipped
        if not cells or all(not c.strip() for c in cells):
            continue
        if len(cells) > len(header) and not any(c.strip() for c in cells[len(header) :]):
            cells = cells[: len(header)]  # Excel writes trailing separators: empty cells
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
                obj = loads_strict(value)
            except ValueError as exc:
                return BadRow(line, f"column data is not valid JSON: {getattr(exc, 'msg', exc)}")
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


def _jsonl_rows(lines: Iterator[str]) -> Iterator[Row | BadRow]:
    for line_no, text in enumerate(lines, 1):
        if not text.strip():
            continue
        try:
            obj = loads_strict(text)
        except json.JSONDecodeError as exc:
            yield BadRow(line_no, f"is not valid JSON: {exc.msg} (column {exc.colno})")
            continue
        except ValueError as exc:  # NaN, Infinity, 1e999
            yield BadRow(line_no, f"is not valid JSON: {exc}")
            continue
        except RecursionError:
            yield BadRow(line_no, "is nested too deeply")
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
        elif key == ATTACHMENTS:
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                obj = {**obj, key: ";".join(value)}  # the CSV column's form
            elif value is not None and not isinstance(value, str):
                return BadRow(line, f"field {key} must be a list of paths or a string")
        else:
            return BadRow(line, f"unknown field {key!r}")
    return Row(line, {k: v for k, v in obj.items() if v is not None})
