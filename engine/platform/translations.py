"""Gettext catalogs (managed with Babel) and which language a customer reads.

Catalogs live as ``<directory>/<language>/LC_MESSAGES/messages.po`` beside the
``messages.pot`` that ``pybabel extract`` writes from the sources (``babel.cfg``).
They are compiled when loaded, with Babel's ``read_po`` and ``write_mo``, so what
is served is always what the ``.po`` files say: no compiled ``.mo`` files to build
at install time or to fall out of step with their sources. A fresh checkout, the
wheel and the image need nothing but the ``.po`` files.

English is the source language: its catalog repeats every message as it is.
``docs/localisation.md`` says how to add a language.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from functools import cache
from gettext import GNUTranslations, NullTranslations
from io import BytesIO
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

DOMAIN = "messages"
DEFAULT_LANGUAGE = "en"
# What a language tag may look like in a link or header (BCP 47 or CLDR style).
_TAG = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*")
_MAX_TAG = 35

Translate = Callable[[str], str]


def N_(message: str) -> str:  # noqa: N802 (the name gettext's tools look for)
    """Marks ``message`` for extraction; it is translated where it is shown."""
    return message


def catalog_path(directory: Path, language: str) -> Path:
    return directory / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def available_languages(directory: Path) -> tuple[str, ...]:
    """Every language with a catalog under ``directory``, English first."""
    found = sorted(path.parent.parent.name for path in directory.glob(f"*/LC_MESSAGES/{DOMAIN}.po"))
    return tuple(sorted(found, key=lambda language: language != DEFAULT_LANGUAGE))


@cache
def translations(directory: Path, language: str) -> NullTranslations:
    """The catalog of ``language`` under ``directory``, compiled now; an empty one
    (every message as written) when there is none."""
    path = catalog_path(directory, language)
    if not path.is_file():
        return NullTranslations()
    with path.open("rb") as source:
        catalog = read_po(source, locale=language, domain=DOMAIN)
    compiled = BytesIO()
    # Fuzzy entries are guesses nobody checked: never shown (the test refuses them).
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return GNUTranslations(compiled)


def clean_tag(tag: str | None) -> str | None:
    """``tag`` when it looks like a language tag, else None (it comes from a URL)."""
    if not tag:
        return None
    tag = tag.strip()
    return tag if len(tag) <= _MAX_TAG and _TAG.fullmatch(tag) else None


def resolve_language(tag: str | None, languages: Iterable[str]) -> str | None:
    """The one of ``languages`` that ``tag`` asks for (``fr-CA`` -> ``fr``); None if none."""
    tag = clean_tag(tag)
    if tag is None:
        return None
    try:
        wanted = Locale.parse(tag.replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        return None
    known = set(languages)
    return wanted.language if wanted.language in known else None


def accepted_languages(header: str) -> list[str]:
    """The tags of an ``Accept-Language`` header, most wanted first (RFC 9110 12.5.4)."""
    ranked: list[tuple[float, int, str]] = []
    for position, item in enumerate(header.split(",")[:20]):
        tag, _, parameters = item.strip().partition(";")
        quality = 1.0
        name, _, value = parameters.strip().partition("=")
        if name.strip().lower() == "q":
            try:
                quality = float(value)
            except ValueError:
                continue
        if tag and tag != "*" and quality > 0:
            ranked.append((-quality, position, tag.strip()))
    return [tag for _, _, tag in sorted(ranked)]


def choose_language(
    languages: Iterable[str], *, asked: str | None = None, accept_language: str = ""
) -> str:
    """The language to answer in: the one ``asked`` (the link's), else the browser's
    most wanted one we have, else English."""
    available = tuple(languages)
    for tag in [asked, *accepted_languages(accept_language)]:
        language = resolve_language(tag, available)
        if language is not None:
            return language
    return DEFAULT_LANGUAGE
