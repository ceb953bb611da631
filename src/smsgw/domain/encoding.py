"""GSM 03.38 / UCS-2 classification, part counting and segmentation.

A text made only of characters of the GSM 7-bit default alphabet (basic table plus the
extension table, whose characters cost two septets: an escape and the character) goes out
as GSM-7; anything else goes out as UCS-2. A single part holds 160 septets or 70 UCS-2 code
units; once a message needs more, each part loses room to the concatenation header and holds
153 septets or 67 code units. An extension character and a surrogate pair are never split
across two parts, which is why counting is done by the same rule that splits.
"""

from __future__ import annotations

import enum
import re

# The GSM 03.38 basic character set, in code-point order (0x1B is the escape to the
# extension table and is not a character of its own).
GSM_BASIC = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
GSM_ESCAPE = 0x1B
# Extension table: character -> code after the escape.
GSM_EXTENSION = {
    "\x0c": 0x0A,
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2F,
    "[": 0x3C,
    "~": 0x3D,
    "]": 0x3E,
    "|": 0x40,
    "€": 0x65,
}

_GSM_BASIC_CODES = {ch: code for code, ch in enumerate(GSM_BASIC) if code != GSM_ESCAPE}
_GSM_ALL_CHARS = "".join(_GSM_BASIC_CODES) + "".join(GSM_EXTENSION)
_NON_GSM = re.compile("[^" + re.escape(_GSM_ALL_CHARS) + "]")
_GSM_EXTENSION_CHAR = re.compile("[" + re.escape("".join(GSM_EXTENSION)) + "]")
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")

GSM_SINGLE_PART = 160
GSM_MULTI_PART = 153
UCS2_SINGLE_PART = 70
UCS2_MULTI_PART = 67


class Encoding(enum.IntEnum):
    """The two encodings; each value is its SMPP data_coding (0 = SMSC default alphabet,
    sent as unpacked GSM-7 septets; 8 = UCS-2)."""

    GSM7 = 0
    UCS2 = 8

    @property
    def data_coding(self) -> int:
        return int(self)


def encoding_of(text: str) -> Encoding:
    if text.isascii() and text.isprintable():
        # Printable ASCII is all GSM-7 but for the backtick: three C calls instead of a scan.
        return Encoding.UCS2 if "`" in text else Encoding.GSM7
    return Encoding.UCS2 if _NON_GSM.search(text) else Encoding.GSM7


def _unit_cost(ch: str, encoding: Encoding) -> int:
    if encoding is Encoding.GSM7:
        return 2 if ch in GSM_EXTENSION else 1
    return 2 if ord(ch) > 0xFFFF else 1


def units(text: str, encoding: Encoding) -> int:
    """Septets (GSM-7) or UTF-16 code units (UCS-2) that `text` occupies."""
    if encoding is Encoding.GSM7:
        return len(text) + len(_GSM_EXTENSION_CHAR.findall(text))
    return len(text) + len(_ASTRAL.findall(text))


def split(text: str, encoding: Encoding | None = None) -> list[str]:
    """The parts `text` is sent as, in order; their concatenation is `text`."""
    if encoding is None:
        encoding = encoding_of(text)
    single, multi = _limits(encoding)
    if units(text, encoding) <= single:
        return [text]
    parts: list[str] = []
    start = 0
    used = 0
    for index, ch in enumerate(text):
        cost = _unit_cost(ch, encoding)
        if used + cost > multi:
            parts.append(text[start:index])
            start = index
            used = 0
        used += cost
    parts.append(text[start:])
    return parts


def count_parts(text: str) -> tuple[Encoding, int]:
    """Encoding and number of parts of `text`, equal to `len(split(text))`.

    Texts without two-unit characters (the vast majority) are counted arithmetically; the
    rest go through `split`, so that one rule decides where a part ends.
    """
    if text.isascii() and text.isprintable() and "`" not in text:
        # The common case, without the general scans: printable ASCII but the backtick is
        # GSM-7, and only its extension characters ({}[]\^~|) cost two septets.
        length = len(text)
        if _GSM_EXTENSION_CHAR.search(text) is not None:
            length += len(_GSM_EXTENSION_CHAR.findall(text))
        if length <= GSM_SINGLE_PART:
            return Encoding.GSM7, 1
        if length == len(text):
            return Encoding.GSM7, -(-length // GSM_MULTI_PART)
        return Encoding.GSM7, len(split(text, Encoding.GSM7))
    encoding = encoding_of(text)
    single, multi = _limits(encoding)
    length = units(text, encoding)
    if length <= single:
        return encoding, 1
    if length == len(text):
        return encoding, -(-length // multi)
    return encoding, len(split(text, encoding))


def _limits(encoding: Encoding) -> tuple[int, int]:
    if encoding is Encoding.GSM7:
        return GSM_SINGLE_PART, GSM_MULTI_PART
    return UCS2_SINGLE_PART, UCS2_MULTI_PART


def encode(text: str, encoding: Encoding) -> bytes:
    """Bytes for SMPP short_message: unpacked septets (escape + code for extension
    characters) for GSM-7, big-endian UTF-16 for UCS-2."""
    if encoding is Encoding.UCS2:
        return text.encode("utf-16-be")
    out = bytearray()
    for ch in text:
        code = _GSM_BASIC_CODES.get(ch)
        if code is not None:
            out.append(code)
        else:
            out.append(GSM_ESCAPE)
            out.append(GSM_EXTENSION[ch])
    return bytes(out)


_GSM_EXTENSION_BY_CODE = {code: ch for ch, code in GSM_EXTENSION.items()}


def decode(data: bytes, data_coding: int) -> str:
    """Text of an SMPP short_message (for receipts and mobile-originated messages).

    Unknown data_coding values are read as Latin-1 so that nothing raises on a peer's bytes.
    """
    if data_coding == 8:
        return data.decode("utf-16-be", errors="replace")
    if data_coding == 0:
        out = []
        escaped = False
        for byte in data:
            if escaped:
                out.append(_GSM_EXTENSION_BY_CODE.get(byte, " "))
                escaped = False
            elif byte == GSM_ESCAPE:
                escaped = True
            elif byte < 128:
                out.append(GSM_BASIC[byte])
            else:
                out.append("?")
        return "".join(out)
    if data_coding == 1:
        return data.decode("ascii", errors="replace")
    return data.decode("latin-1")
