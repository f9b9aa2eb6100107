"""SMS length and segment count, as a phone network counts them.

GSM 03.38 / 3GPP TS 23.038: a text that fits the GSM 7-bit default alphabet (and its
extension table, whose characters take two septets: an escape and the character) is sent
in one segment of 160 septets, or split into segments of 153 (7 septets go to the
concatenation header, 3GPP TS 23.040 §9.2.3.24.1). Any other character makes the whole
text UCS-2: 70 UTF-16 code units in one segment, 67 per segment when split.
"""

from __future__ import annotations

from dataclasses import dataclass

# 3GPP TS 23.038 §6.2.1, the default alphabet (one septet each)
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# §6.2.1.1, the extension table (escape + character: two septets each)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")


@dataclass(frozen=True)
class SmsCount:
    encoding: str  # "GSM-7" or "UCS-2"
    length: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    characters: int  # characters as the user sees them (code points)
    segments: int
    per_segment: int  # the capacity of each segment for this text


def count(text: str) -> SmsCount:
    """Encoding, length and segment count of an SMS text (see the module docstring).

    An empty text is one segment, as a phone sends it.
    """
    if all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text):
        encoding, single, multi = "GSM-7", 160, 153
        length = sum(2 if c in GSM7_EXTENSION else 1 for c in text)
    else:
        encoding, single, multi = "UCS-2", 70, 67
        length = len(text.encode("utf-16-le")) // 2  # characters beyond the BMP take two
    if length <= single:
        segments, per = 1, single
    else:
        segments, per = -(-length // multi), multi
    return SmsCount(encoding, length, len(text), segments, per)
