"""The terminal: what may reach it, and (later in this module) the one terminal object.

Stdlib only and cheap to import: the sandbox's request log, `outkit sign` and the error
path of every command use `escape_controls` without loading click or rich.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Iterator
from typing import Any, TextIO

# What a terminal would act on instead of showing (docs/get.md, "Text from the API never
# drives your terminal"):
# - C0 controls U+0000-U+001F and DEL U+007F (ECMA-48 section 5.2: ESC starts CSI/OSC
#   sequences, CR and BS overwrite what was shown, BEL rings);
# - C1 controls U+0080-U+009F (ECMA-48 section 5.3: U+009B is a one-character CSI and
#   U+009D an OSC on terminals that take 8-bit controls);
# - U+2028 LINE SEPARATOR and U+2029 PARAGRAPH SEPARATOR, which str.splitlines() and some
#   terminals break lines on, so one error would not be one line;
# - the bidirectional embeddings, overrides and isolates U+202A-U+202E and U+2066-U+2069
#   (Unicode UAX #9; CVE-2021-42574 "Trojan Source"), which reorder what follows them;
# - lone surrogates U+D800-U+DFFF (from undecodable bytes), which no stream can encode.
_OTHERS = "\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff"
_patterns: dict[bool, re.Pattern[str]] = {}


def _unsafe(keep_lines: bool) -> re.Pattern[str]:
    """The characters above; with `keep_lines`, the same less TAB (U+0009) and LF (U+000A).

    Compiled on first use, not at import: the large ranges take about a millisecond to
    compile, which every start-up (`outkit --help`, `outkit sign`) would pay for text that
    is nearly always printable (and so never reaches the pattern, see `_is_plain`)."""
    pattern = _patterns.get(keep_lines)
    if pattern is None:
        c0 = "\x00-\x08\x0b-\x1f" if keep_lines else "\x00-\x1f"
        pattern = _patterns[keep_lines] = re.compile(f"[{c0}{_OTHERS}]")
    return pattern


def _is_plain(text: str) -> bool:
    # str.isprintable() is False for every character above (categories Cc, Zl, Zp, Cf and
    # Cs are all "not printable" to Python), so True means there is nothing to escape
    return text.isprintable()


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code in _NAMED:
        return _NAMED[code]
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


_NAMED = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}


def escape_controls(text: str, *, multiline: bool = False) -> str:
    """`text` with every character a terminal would act on shown as a Python-style escape.

    Args:
        text: any text from outside (API answers, message fields, config values, file
            names, error messages).
        multiline: keep line feeds and tabs (for a message body shown on a TTY); every
            other control, CR included, is still escaped.

    Returns:
        The text unchanged when it has none of those characters (the common case costs one
        regex scan); otherwise each such character replaced by ``\\n``, ``\\t``, ``\\r``,
        ``\\xHH`` or ``\\uHHHH``. Without `multiline` the result is always one line.

    Escaped: C0 controls and DEL (ECMA-48 5.2), C1 controls (ECMA-48 5.3), U+2028/U+2029,
    the bidi controls U+202A-U+202E and U+2066-U+2069 (Unicode UAX #9, CVE-2021-42574) and
    lone surrogates. Printable text, combining marks and emoji joiners pass through.
    """
    if _is_plain(text):
        return text
    pattern = _unsafe(keep_lines=multiline)
    if pattern.search(text) is None:
        return text
    return pattern.sub(_escaped, text)


def json_safe(text: str) -> str:
    """JSON text (from json.dumps with ensure_ascii=False) with the characters
    escape_controls would escape written as ``\\uXXXX`` JSON escapes (RFC 8259 section 7):
    the same JSON value, but DEL, C1 and bidi controls, which json.dumps leaves raw, can no
    longer act on a terminal. Outside strings JSON text has none of them."""
    # TAB and LF stay: JSON's whitespace between tokens (json.dumps escapes them in strings)
    if _is_plain(text):
        return text
    pattern = _unsafe(keep_lines=True)
    if pattern.search(text) is None:
        return text
    return pattern.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def one_line(text: str, limit: int | None = None) -> str:
    """`text` for one line of a view or of stderr: runs of whitespace (line breaks
    included) become one space, then controls are escaped (escape_controls).

    Args:
        text: text from outside.
        limit: cut to at most this many characters, ending in "…".
    """
    text = escape_controls(" ".join(text.split()))
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def shell_quote(text: str) -> str:
    """``text`` as one shell word that is also safe to print: shlex.quote (POSIX sh) when
    it holds no character escape_controls would escape; else ANSI-C quoting, ``$'...'``
    (bash, zsh, ksh, POSIX.1-2024 sh), with those characters as ``\\xHH``/``\\uHHHH``
    escapes the shell turns back into the same bytes. A file name with ESC in a printed
    curl command otherwise reached the terminal raw (attacker pass)."""
    if escape_controls(text, multiline=False) == text:
        import shlex

        return shlex.quote(text)
    out = []
    for ch in text:
        code = ord(ch)
        if ch in "\\'":
            out.append("\\" + ch)
        elif escape_controls(ch) != ch:
            out.append(f"\\x{code:02x}" if code < 0x80 else f"\\u{code:04x}")
        else:
            out.append(ch)
    return "$'" + "".join(out) + "'"


class Terminal:
    """The one place that knows the streams: where output goes, whether each stream is a
    terminal, colour and width (httpie's Environment, gh's IOStreams).

    Every fact can be set when built, so a test asks for a TTY directly instead of
    running the CLI on a pseudo-terminal; an unset fact is read from the real stream at
    the moment it is asked (click's CliRunner swaps sys.stdout after start-up).
    """

    def __init__(
        self,
        *,
        stdout_tty: bool | None = None,
        stderr_tty: bool | None = None,
        stdin_tty: bool | None = None,
        color: bool | None = None,
        width: int | None = None,
    ) -> None:
        self._stdout_tty = stdout_tty
        self._stderr_tty = stderr_tty
        self._stdin_tty = stdin_tty
        self._color = color
        self._width = width

    @property
    def stdout(self) -> TextIO:
        return sys.stdout

    @property
    def stderr(self) -> TextIO:
        return sys.stderr

    @property
    def stdin(self) -> TextIO:
        return sys.stdin

    @property
    def stdout_tty(self) -> bool:
        return _isatty(sys.stdout) if self._stdout_tty is None else self._stdout_tty

    @property
    def stderr_tty(self) -> bool:
        return _isatty(sys.stderr) if self._stderr_tty is None else self._stderr_tty

    @property
    def stdin_tty(self) -> bool:
        return _isatty(sys.stdin) if self._stdin_tty is None else self._stdin_tty

    @property
    def color(self) -> bool:
        """Colour unless turned off: any non-empty NO_COLOR (no-color.org) or --no-color."""
        return not os.environ.get("NO_COLOR") if self._color is None else self._color

    @property
    def width(self) -> int:
        """Columns of the terminal: shutil.get_terminal_size's rule (a positive COLUMNS wins,
        then the size of stdout's terminal, else 80), without importing shutil, which loads
        zlib, bz2 and lzma on the path of `outkit --help`."""
        if self._width is not None:
            return self._width
        columns = os.environ.get("COLUMNS", "")
        if columns.isdigit() and int(columns) > 0:
            return int(columns)
        try:
            size = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            size = 0
        return size or 80

    def raw(self, text: str, *, multiline: bool = False) -> str:
        """Text the user asked for raw (--field, --body): unchanged for a pipe or a file,
        escaped when stdout is a terminal (which would act on its controls)."""
        return escape_controls(text, multiline=multiline) if self.stdout_tty else text

    def console(self, *, stderr: bool = False) -> Any:
        """A rich Console on stdout or stderr with these facts (rich imported here only)."""
        from rich.console import Console

        tty = self.stderr_tty if stderr else self.stdout_tty
        return Console(
            stderr=stderr,
            force_terminal=tty,
            no_color=not self.color,
            width=self._width,
            highlight=False,
            soft_wrap=False,
        )


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


_current: list[Terminal] = []


def current() -> Terminal:
    """The terminal of the running command (tests install one with `use`)."""
    if not _current:
        _current.append(Terminal())
    return _current[-1]


@contextlib.contextmanager
def use(terminal: Terminal) -> Iterator[Terminal]:
    """Make `terminal` the current one for the block (tests: a TTY without a pty)."""
    _current.append(terminal)
    try:
        yield terminal
    finally:
        _current.remove(terminal)
