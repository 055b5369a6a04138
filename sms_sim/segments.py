"""How many SMS parts a text costs, counted as Twilio bills it.

A text written only in the GSM-7 alphabet fits 160 characters in one SMS, or 153 per part when
it is split (the rest carries the header that joins the parts); the extension characters
(``€``, ``{``, ``[``…) take two places. Any other character forces UCS-2 for the whole text:
70 UTF-16 units alone, 67 per part, and a character outside the BMP takes two units. A character
is never cut between two parts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

GSM7_BASIC: Final = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION: Final = frozenset("^{}\\[~]|€\f")

Encoding = Literal["GSM-7", "UCS-2"]


@dataclass(frozen=True, slots=True)
class Segmentation:
    encoding: Encoding
    segments: int


def segment(body: str) -> Segmentation:
    if all(char in GSM7_BASIC or char in GSM7_EXTENSION for char in body):
        units = [2 if char in GSM7_EXTENSION else 1 for char in body]
        return Segmentation("GSM-7", _parts(units, single=160, multi=153))
    units = [2 if ord(char) > 0xFFFF else 1 for char in body]
    return Segmentation("UCS-2", _parts(units, single=70, multi=67))


def _parts(units: list[int], *, single: int, multi: int) -> int:
    if sum(units) <= single:
        return 1
    parts, used = 1, 0
    for size in units:
        if used + size > multi:
            parts += 1
            used = 0
        used += size
    return parts
