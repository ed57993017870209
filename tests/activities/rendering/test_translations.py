"""Every email and text is translated into every supported language: each English
template has its counterpart, and no English sentence of it was left in the copy."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from activities.email.rendering import TEMPLATE_DIR, TEMPLATE_NAMES, EmailRenderer
from activities.rendering.context import MessageContext
from activities.rendering.formatting import DEFAULT_LOCALE, SUPPORTED_LOCALES
from activities.sms.rendering import SMS_TEMPLATE_DIR, SMS_TEMPLATE_NAMES, SmsRenderer
from tests.activities.email.samples import BRAND, full_context, make_order

TRANSLATED = [locale for locale in SUPPORTED_LOCALES if locale != DEFAULT_LOCALE]
# Jinja tags and comments, and HTML tags: what is left between them is copy.
_MARKUP = re.compile(r"{{.*?}}|{%.*?%}|{#.*?#}|<[^>]+>", re.S)
_WORD = re.compile(r"[^\W\d_]{2,}")
# A stretch of copy this many words long is a sentence, not a shared word ("Total").
_SENTENCE_WORDS = 3


def _copy(path: Path) -> str:
    """The template's copy, with markup gone and whitespace single."""
    return " ".join(_MARKUP.sub("\n", path.read_text(encoding="utf-8")).split())


def _sentences(path: Path) -> set[str]:
    pieces = _MARKUP.split(path.read_text(encoding="utf-8"))
    sentences = {" ".join(piece.split()) for piece in pieces}
    return {text for text in sentences if len(_WORD.findall(text)) >= _SENTENCE_WORDS}


def _pairs(folder: Path) -> list[tuple[Path, Path]]:
    return [
        (english, folder / locale / english.name)
        for english in sorted((folder / DEFAULT_LOCALE).glob("*.j2"))
        for locale in TRANSLATED
    ]


TEMPLATE_PAIRS = _pairs(TEMPLATE_DIR) + _pairs(SMS_TEMPLATE_DIR)


def test_french_and_spanish_are_supported() -> None:
    assert {"en", "de", "fr", "es"} <= set(SUPPORTED_LOCALES)


def test_the_check_finds_the_copy_of_every_template() -> None:
    # Without copy found, the test below would pass for any translation.
    assert len(TEMPLATE_PAIRS) == (38 + len(SMS_TEMPLATE_NAMES)) * len(TRANSLATED)
    for english, _ in TEMPLATE_PAIRS:
        # base.txt.j2, the footer, is two short labels; every message has sentences.
        if english.name != "base.txt.j2":
            assert _sentences(english), english


@pytest.mark.parametrize(
    ("english", "translated"),
    TEMPLATE_PAIRS,
    ids=[f"{t.parent.parent.parent.name}-{t.parent.name}-{t.name}" for _, t in TEMPLATE_PAIRS],
)
def test_no_english_sentence_is_left_untranslated(english: Path, translated: Path) -> None:
    assert translated.is_file()
    copy = _copy(translated)
    left = sorted(sentence for sentence in _sentences(english) if sentence in copy)
    assert left == []


@pytest.mark.parametrize("locale", TRANSLATED)
def test_every_message_reads_differently_from_the_english(locale: str) -> None:
    emails = EmailRenderer(BRAND)
    texts = SmsRenderer(BRAND)
    for template in TEMPLATE_NAMES:
        english = emails.render(template, full_context(make_order()))
        local = emails.render(template, full_context(make_order(locale=locale)))
        assert local.subject != english.subject, template
        assert local.preheader != english.preheader, template
        assert f'<html lang="{locale}">' in local.html
    for template in SMS_TEMPLATE_NAMES:
        context: MessageContext = full_context(make_order(locale=locale))
        english_body = texts.render(template, full_context(make_order()), max_segments=2).body
        assert texts.render(template, context, max_segments=2).body != english_body, template
