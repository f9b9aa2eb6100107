"""The terminal's escaping rule: what data may never bring to a terminal."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from outkit_cli.terminal import escape_controls

HOSTILE = [
    ("\x1b[2J", "\\x1b[2J"),  # CSI: clear the screen
    ("\x1b]0;title\x07", "\\x1b]0;title\\x07"),  # OSC: set the window title
    ("\x1b]8;;http://x.invalid\x1b\\link\x1b]8;;\x1b\\", None),  # OSC 8 hyperlink
    ("abc\x08\x08\x08xyz", "abc\\x08\\x08\\x08xyz"),  # BS overwrites
    ("ok\rFAKE", "ok\\rFAKE"),  # CR overwrites the line
    ("\x9b31m", "\\x9b31m"),  # C1 CSI
    ("\x7f", "\\x7f"),
    ("a\u202eevil\u202c", "a\\u202eevil\\u202c"),  # bidi override (Trojan Source)
    ("\u2066x\u2069", "\\u2066x\\u2069"),  # bidi isolates
    ("one\u2028two", "one\\u2028two"),
    ("bad\ud800", "bad\\ud800"),
    ("l1\nl2\tx", "l1\\nl2\\tx"),
]


@pytest.mark.parametrize(("text", "expected"), HOSTILE)
def test_controls_are_shown_escaped(text: str, expected: str | None) -> None:
    out = escape_controls(text)
    if expected is not None:
        assert out == expected
    assert "\x1b" not in out and "\x07" not in out and "\r" not in out
    assert len(out.splitlines()) == 1


def test_printable_text_passes_unchanged() -> None:
    for text in ["plain", "é café", "日本語", "👨\u200d👩\u200d👧 family", "a\\x1b literal"]:
        assert escape_controls(text) == text


def test_multiline_keeps_line_feeds_and_tabs_only() -> None:
    assert escape_controls("a\nb\tc", multiline=True) == "a\nb\tc"
    assert escape_controls("a\r\nb\x1b[1m", multiline=True) == "a\\r\nb\\x1b[1m"


@given(st.text())
def test_any_text_becomes_one_line_without_controls(text: str) -> None:
    out = escape_controls(text)
    assert len(out.splitlines()) <= 1
    assert not any(
        ord(c) < 0x20
        or 0x7F <= ord(c) <= 0x9F
        or 0x202A <= ord(c) <= 0x202E
        or 0x2066 <= ord(c) <= 0x2069
        for c in out
    )
    out.encode("utf-8")  # no lone surrogate left


def test_importing_it_loads_neither_click_nor_rich() -> None:
    code = (
        "import sys, outkit_cli.terminal;"
        "print(sorted(m for m in ('click', 'rich') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
