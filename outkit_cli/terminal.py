"""The terminal: what may reach it, and (later in this module) the one terminal object.

Stdlib only and cheap to import: the sandbox's request log, `outkit sign` and the error
path of every command use `escape_controls` without loading click or rich.
"""

from __future__ import annotations

import re

# What a terminal would act on instead of showing (design.md, "Machine output"):
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
_UNSAFE = re.compile(f"[\x00-\x1f{_OTHERS}]")
# the same less TAB (U+0009) and LF (U+000A)
_UNSAFE_KEEP_LINES = re.compile(f"[\x00-\x08\x0b-\x1f{_OTHERS}]")


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
    pattern = _UNSAFE_KEEP_LINES if multiline else _UNSAFE
    if pattern.search(text) is None:
        return text
    return pattern.sub(_escaped, text)
