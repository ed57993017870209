"""How long an SMS is: the encoding it needs and how many segments it is sent as.

The rules are those of GSM 03.38 (3GPP TS 23.038) and concatenated SMS:

* A text made only of characters from the GSM 7-bit default alphabet goes out as
  GSM-7. Each basic character takes one septet; the characters of the extension
  table (``{ } [ ] ~ \\ | ^ €`` and form feed) are sent as ESC + character and
  take two. Anything else (``ą``, ``ç``, ``“``, emoji, ...) makes the *whole*
  message UCS-2, counted in UTF-16 code units, so an emoji outside the BMP is two.
* One SMS carries 160 septets or 70 UCS-2 units. A longer text is split into
  segments that each lose room to the concatenation header: 153 septets or 67
  units apiece.
* A segment boundary never splits an ESC sequence or a surrogate pair; such a
  character moves whole into the next segment, which can cost one extra segment
  compared with a plain division.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

Encoding = Literal["GSM-7", "UCS-2"]

# The GSM 7-bit default alphabet, row by row as in the 3GPP table (0x00-0x7F),
# without 0x1B: ESC only introduces an extension character, it is not text.
GSM7_BASIC: frozenset[str] = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
# The extension table: each of these is sent as ESC + one septet.
GSM7_EXTENSION: frozenset[str] = frozenset("\f^{}\\[~]|€")

# Units per message when the text fits one SMS, and per segment when it is split.
SINGLE_SMS_UNITS: dict[Encoding, int] = {"GSM-7": 160, "UCS-2": 70}
SEGMENT_UNITS: dict[Encoding, int] = {"GSM-7": 153, "UCS-2": 67}

# "…" is not in the GSM alphabet: adding it to a GSM-7 text would make the whole
# message UCS-2 and cut its capacity by more than half.
GSM7_ELLIPSIS = "..."
UCS2_ELLIPSIS = "…"

# Dropped from the end of shortened text before the ellipsis: "Hi Jane,..." reads badly.
_TRAILING_BEFORE_ELLIPSIS = " \t\r\n,;:.-"


@dataclass(frozen=True)
class SegmentInfo:
    """``units``: septets for GSM-7, UTF-16 code units for UCS-2."""

    encoding: Encoding
    units: int
    segments: int


def is_gsm7(text: str) -> bool:
    """True when every character of ``text`` can be sent in the GSM 7-bit alphabet."""
    return all(char in GSM7_BASIC or char in GSM7_EXTENSION for char in text)


def encoding_of(text: str) -> Encoding:
    return "GSM-7" if is_gsm7(text) else "UCS-2"


def _unit_widths(text: str, encoding: Encoding) -> Iterator[int]:
    if encoding == "GSM-7":
        for char in text:
            yield 2 if char in GSM7_EXTENSION else 1
    else:
        for char in text:
            yield 2 if ord(char) > 0xFFFF else 1


def segment_info(text: str) -> SegmentInfo:
    """The encoding ``text`` needs, its length in that encoding's units and its segments.

    An empty text is still one (empty) SMS.
    """
    encoding = encoding_of(text)
    widths = list(_unit_widths(text, encoding))
    units = sum(widths)
    if units <= SINGLE_SMS_UNITS[encoding]:
        return SegmentInfo(encoding=encoding, units=units, segments=1)
    room = SEGMENT_UNITS[encoding]
    segments, used = 1, 0
    for width in widths:
        # An ESC sequence or a surrogate pair is never split between segments.
        if used + width > room:
            segments += 1
            used = 0
        used += width
    return SegmentInfo(encoding=encoding, units=units, segments=segments)


def fits(text: str, max_segments: int) -> bool:
    return segment_info(text).segments <= max_segments


def fit_to_segments(text: str, max_segments: int, *, keep_suffix: str = "") -> str:
    """``text`` itself if it fits in ``max_segments``; else shortened to fit.

    Only the part before ``keep_suffix`` (a link, an opt-out notice) is shortened:
    it is cut at a word boundary, keeping as many words as fit, and marked with an
    ellipsis, "..." unless the rest of the message is UCS-2 anyway (then "…", one
    unit), so shortening never turns a GSM-7 message into a UCS-2 one. When not
    even one word fits, the result is the suffix alone (without leading whitespace).

    Raises ValueError when ``text`` does not end with ``keep_suffix``, when
    ``max_segments`` is below 1, or when the suffix alone does not fit.
    """
    if max_segments < 1:
        raise ValueError(f"max_segments must be at least 1, got {max_segments}")
    if not text.endswith(keep_suffix):
        raise ValueError("text does not end with keep_suffix")
    if fits(text, max_segments):
        return text

    suffix_alone = keep_suffix.lstrip()
    if not fits(suffix_alone, max_segments):
        info = segment_info(suffix_alone)
        raise ValueError(
            f"the suffix alone needs {info.segments} segments ({info.units} {info.encoding}"
            f" units), more than {max_segments}"
        )

    head = text[: len(text) - len(keep_suffix)]
    # Every character takes at least one unit, so no fitting text is longer than
    # this many characters; cuts further right need not be tried.
    longest = SINGLE_SMS_UNITS["GSM-7"] if max_segments == 1 else 153 * max_segments
    # Try each word boundary (a cut just before whitespace), longest kept text first.
    for cut in range(min(len(head) - 1, longest), 0, -1):
        if not head[cut].isspace():
            continue
        kept = head[:cut].rstrip(_TRAILING_BEFORE_ELLIPSIS)
        if not kept:
            continue
        ellipsis = GSM7_ELLIPSIS if is_gsm7(kept + keep_suffix) else UCS2_ELLIPSIS
        candidate = kept + ellipsis + keep_suffix
        if fits(candidate, max_segments):
            return candidate
    return suffix_alone
