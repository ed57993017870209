"""SMS encoding and segment counts (GSM 03.38), and shortening a text to a segment cap.

Every expected number here was worked out by hand from the rules: GSM-7 carries
160 septets in one SMS and 153 per segment when split, UCS-2 70 and 67 UTF-16
units; extension characters take two septets, characters outside the BMP two units.
"""

from __future__ import annotations

import pytest

from activities.sms.segments import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    SegmentInfo,
    fit_to_segments,
    is_gsm7,
    segment_info,
)

LINK = " https://x.test/l"  # 17 characters, the space included


def words(word: str, count: int) -> str:
    return " ".join([word] * count)


def test_the_alphabets_have_the_sizes_of_the_standard() -> None:
    # 128 positions in the default alphabet, less ESC; ten extension characters.
    assert len(GSM7_BASIC) == 127
    assert len(GSM7_EXTENSION) == 10
    assert not GSM7_BASIC & GSM7_EXTENSION


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a" * 160, SegmentInfo("GSM-7", 160, 1)),
        ("a" * 161, SegmentInfo("GSM-7", 161, 2)),
        ("a" * 306, SegmentInfo("GSM-7", 306, 2)),  # 2 x 153
        ("a" * 307, SegmentInfo("GSM-7", 307, 3)),
        ("a" * 459, SegmentInfo("GSM-7", 459, 3)),  # 3 x 153
        ("ą" * 70, SegmentInfo("UCS-2", 70, 1)),
        ("ą" * 71, SegmentInfo("UCS-2", 71, 2)),
        ("ą" * 134, SegmentInfo("UCS-2", 134, 2)),  # 2 x 67
        ("ą" * 135, SegmentInfo("UCS-2", 135, 3)),
        ("", SegmentInfo("GSM-7", 0, 1)),
    ],
    ids=["160", "161", "306", "307", "459", "ucs70", "ucs71", "ucs134", "ucs135", "empty"],
)
def test_segments_at_the_limits(text: str, expected: SegmentInfo) -> None:
    assert segment_info(text) == expected


@pytest.mark.parametrize("char", sorted(GSM7_EXTENSION))
def test_extension_characters_take_two_septets_and_stay_gsm7(char: str) -> None:
    assert segment_info(char) == SegmentInfo("GSM-7", 2, 1)


def test_extension_characters_count_double_against_the_limit() -> None:
    assert segment_info("{}[]~\\|^€") == SegmentInfo("GSM-7", 18, 1)
    # 80 euro signs are 160 septets: still one SMS; one more letter makes two.
    assert segment_info("€" * 80) == SegmentInfo("GSM-7", 160, 1)
    assert segment_info("€" * 80 + "a") == SegmentInfo("GSM-7", 161, 2)
    assert segment_info("Price: 12,50 €") == SegmentInfo("GSM-7", 15, 1)


def test_german_and_other_basic_letters_are_gsm7() -> None:
    assert segment_info("ä") == SegmentInfo("GSM-7", 1, 1)
    # 15 characters, then 15 letters each after a space.
    assert segment_info("Grüße aus Köln, Ä Ö Ü ß é à Ñ Ø Å Æ £ ¥ § ¿ ¡") == SegmentInfo(
        "GSM-7", 45, 1
    )
    assert is_gsm7("Line one\nline two\r\n")


@pytest.mark.parametrize("char", ["ą", "Ł", "ç", "…", "“", "\u00a0", "\t", "\x1b"])
def test_one_character_outside_the_alphabet_makes_the_whole_text_ucs2(char: str) -> None:
    # Lower-case ç is not in the 3GPP table (only Ç is), tab and bare ESC neither.
    assert segment_info("a" * 69 + char) == SegmentInfo("UCS-2", 70, 1)
    assert segment_info("a" * 70 + char) == SegmentInfo("UCS-2", 71, 2)


def test_emoji_count_two_utf16_units() -> None:
    assert segment_info("😀") == SegmentInfo("UCS-2", 2, 1)
    assert segment_info("Hi 😀") == SegmentInfo("UCS-2", 5, 1)
    assert segment_info("😀" * 35) == SegmentInfo("UCS-2", 70, 1)
    assert segment_info("😀" * 35 + "a") == SegmentInfo("UCS-2", 71, 2)


def test_an_escape_sequence_is_never_split_between_segments() -> None:
    # 152 + 2 + 152 = 306 septets, which would be two full segments of 153, but the
    # euro sign does not fit in the one septet left after 152 letters: segment 1
    # carries 152, segment 2 the euro sign and 151 letters, segment 3 the last letter.
    text = "a" * 152 + "€" + "a" * 152
    assert segment_info(text) == SegmentInfo("GSM-7", 306, 3)
    # Moved one letter earlier, the euro sign ends segment 1 exactly: two segments.
    assert segment_info("a" * 151 + "€" + "a" * 153) == SegmentInfo("GSM-7", 306, 2)


def test_a_surrogate_pair_is_never_split_between_segments() -> None:
    # 66 + 2 + 66 = 134 units: segment 1 takes 66 (the emoji needs 2 of the 1 left),
    # segment 2 the emoji and 65 letters, segment 3 the last letter.
    assert segment_info("ą" * 66 + "😀" + "ą" * 66) == SegmentInfo("UCS-2", 134, 3)
    assert segment_info("ą" * 65 + "😀" + "ą" * 67) == SegmentInfo("UCS-2", 134, 2)


# --- fit_to_segments -------------------------------------------------------------------


def test_a_text_that_fits_is_returned_unchanged() -> None:
    text = words("word", 10) + LINK
    assert fit_to_segments(text, 1, keep_suffix=LINK) == text
    assert fit_to_segments("a" * 306, 2) == "a" * 306


def test_a_long_gsm7_text_keeps_as_many_words_as_fit_and_the_suffix() -> None:
    # 40 words of 4 letters (199 characters) and the 17-character link. In one SMS
    # (160 septets) the kept words get 160 - 3 ("...") - 17 = 140: 28 words take
    # 28 x 5 - 1 = 139, 29 would take 144.
    text = words("word", 40) + LINK
    fitted = fit_to_segments(text, 1, keep_suffix=LINK)
    assert fitted == words("word", 28) + "..." + LINK
    assert segment_info(fitted) == SegmentInfo("GSM-7", 159, 1)


def test_a_long_ucs2_text_uses_the_one_unit_ellipsis() -> None:
    # UCS-2: 70 units, less "…" (1) and the link (17), leave 52 for the words:
    # 10 words of 4 letters take 49, 11 would take 54.
    text = words("ąąąą", 40) + LINK
    fitted = fit_to_segments(text, 1, keep_suffix=LINK)
    assert fitted == words("ąąąą", 10) + "…" + LINK
    assert segment_info(fitted) == SegmentInfo("UCS-2", 67, 1)


def test_shortening_never_turns_gsm7_into_ucs2() -> None:
    fitted = fit_to_segments(words("word", 400) + LINK, 2, keep_suffix=LINK)
    assert "…" not in fitted
    assert segment_info(fitted).encoding == "GSM-7"


def test_dropping_the_only_ucs2_character_makes_the_text_gsm7_again() -> None:
    # The "ą" is cut off, so the rest is GSM-7, gets "..." and the full 160 septets.
    text = words("word", 40) + " ą" + LINK
    assert segment_info(text).encoding == "UCS-2"
    fitted = fit_to_segments(text, 1, keep_suffix=LINK)
    assert fitted == words("word", 28) + "..." + LINK
    assert segment_info(fitted).encoding == "GSM-7"


@pytest.mark.parametrize("max_segments", [1, 2, 3])
@pytest.mark.parametrize("word", ["a", "word", "longer-word", "Grüße", "€uro", "ąę", "😀x"])
def test_fitted_text_is_within_the_cap_cut_at_a_word_and_as_long_as_possible(
    word: str, max_segments: int
) -> None:
    head = " ".join(f"{word}{i}" for i in range(300))
    fitted = fit_to_segments(head + LINK, max_segments, keep_suffix=LINK)

    assert segment_info(fitted).segments <= max_segments
    assert fitted.endswith(LINK)
    kept_with_ellipsis = fitted[: -len(LINK)]
    ellipsis = "..." if kept_with_ellipsis.endswith("...") else "…"
    kept = kept_with_ellipsis[: -len(ellipsis)]
    assert kept
    assert head.startswith(kept)
    assert head[len(kept)] == " "  # a word boundary
    # One more word would not have fitted.
    next_boundary = head.find(" ", len(kept) + 1)
    longer = head[:next_boundary] + ellipsis + LINK
    assert segment_info(longer).segments > max_segments


def test_punctuation_before_the_ellipsis_is_dropped() -> None:
    text = "Hello, " + "x" * 200 + LINK
    assert fit_to_segments(text, 1, keep_suffix=LINK) == "Hello..." + LINK


def test_without_a_fitting_word_only_the_suffix_remains() -> None:
    text = "x" * 300 + LINK
    assert fit_to_segments(text, 1, keep_suffix=LINK) == LINK.lstrip()


def test_the_suffix_is_never_cut() -> None:
    suffix = " Reorder: https://x.test/" + "p" * 100 + "\nReply STOP to opt out"
    text = words("word", 100) + suffix
    fitted = fit_to_segments(text, 1, keep_suffix=suffix)
    assert fitted.endswith(suffix)
    assert segment_info(fitted).segments == 1


def test_a_suffix_that_alone_does_not_fit_is_an_error() -> None:
    suffix = " https://x.test/" + "p" * 150  # 166 characters
    with pytest.raises(ValueError, match="suffix alone"):
        fit_to_segments("Hello" + suffix, 1, keep_suffix=suffix)
    # Two segments are enough for it.
    assert fit_to_segments("Hello" + suffix, 2, keep_suffix=suffix) == "Hello" + suffix


def test_an_extension_character_in_the_suffix_counts_double() -> None:
    # 81 euro signs, 162 septets, do not fit one SMS; 80 would (see above).
    suffix = " " + "€" * 81
    with pytest.raises(ValueError, match="suffix alone"):
        fit_to_segments("Hi" + suffix, 1, keep_suffix=suffix)


def test_the_suffix_must_end_the_text() -> None:
    with pytest.raises(ValueError, match="does not end with"):
        fit_to_segments("a" * 200, 1, keep_suffix=LINK)


def test_at_least_one_segment() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        fit_to_segments("hi", 0)
