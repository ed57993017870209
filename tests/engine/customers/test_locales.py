"""The gettext catalogs of the customer-facing texts are complete and current: every
language translates every message of the template (none missing, none fuzzy, the same
placeholders), nothing obsolete lingers, and the template is what extracting the
sources gives today (``make messages`` refreshes both)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

from engine.customers.pages.common import LANGUAGES, LOCALE_DIR
from engine.platform.translations import catalog_path, translations

REPO_ROOT = Path(__file__).resolve().parents[3]
TEMPLATE = LOCALE_DIR / "messages.pot"
REQUIRED_LANGUAGES = {"en", "de", "fr", "es"}


def read(path: Path, locale: str | None = None) -> Catalog:
    with path.open("rb") as source:
        return read_po(source, locale=locale)


def entries(catalog: Catalog) -> dict[str, bool]:
    """Every message id and whether it is a python-format string."""
    return {str(message.id): message.python_format for message in catalog if message.id}


def test_the_customer_texts_come_in_english_german_french_and_spanish() -> None:
    assert set(LANGUAGES) == REQUIRED_LANGUAGES
    assert LANGUAGES[0] == "en"


@pytest.mark.parametrize("language", sorted(REQUIRED_LANGUAGES))
def test_a_catalog_translates_every_message_and_nothing_else(language: str) -> None:
    catalog = read(catalog_path(LOCALE_DIR, language), language)
    template = read(TEMPLATE)
    assert entries(catalog) == entries(template)
    assert not catalog.fuzzy, "the header is marked fuzzy"
    missing = [message.id for message in catalog if message.id and not message.string]
    fuzzy = [message.id for message in catalog if message.id and message.fuzzy]
    assert missing == [], f"{language}: untranslated"
    assert fuzzy == [], f"{language}: fuzzy"
    assert list(catalog.obsolete) == []
    # Babel's own checks: the same %(name)s placeholders in msgid and msgstr.
    problems = [
        (message.id, [str(error) for error in errors]) for message, errors in catalog.check()
    ]
    assert problems == []


@pytest.mark.parametrize("language", sorted(REQUIRED_LANGUAGES - {"en"}))
def test_a_translation_differs_from_english_where_the_words_do(language: str) -> None:
    # A copy of the English text is no translation (brand and channel names aside).
    gettext = translations(LOCALE_DIR, language).gettext
    sentences = [
        message_id
        for message_id in entries(read(TEMPLATE))
        if " " in message_id and "%(" not in message_id
    ]
    untranslated = [sentence for sentence in sentences if gettext(sentence) == sentence]
    assert untranslated == []


def test_the_template_is_what_the_sources_give_today(tmp_path: Path) -> None:
    extracted = tmp_path / "messages.pot"
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from babel.messages.frontend import main; main()",
            "extract",
            "-F",
            "babel.cfg",
            "-k",
            "N_",
            "--no-location",
            "-o",
            str(extracted),
            ".",
        ],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
    )
    assert entries(read(extracted)) == entries(read(TEMPLATE)), (
        "messages.pot is out of date: run `make messages` and translate what it adds"
    )
