"""What Aftercare texts back to START and HELP, in the language of the person asking.

Twilio tells us only the number a keyword came from. The customers texted at that
number (``engine.messaging.phone_index``) may have stored a locale of their own
(``UpdatePreferences``); when every one of them that did speaks the same language
we have a catalog for, the answer is in that language, else in English. The
order's locale is not kept with the number, so a customer who never stored one is
answered in English.

The texts live in the gettext catalogs of the customer pages
(``engine/customers/locales``, ``docs/localisation.md``). The keywords stay the
English ones carriers and Twilio act on (STOP, HELP), whatever the language.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.platform.brand import Brand
from engine.platform.database.tables import CustomerPreferenceRecord
from engine.platform.translations import (
    DEFAULT_LANGUAGE,
    available_languages,
    resolve_language,
    translations,
)

LOCALE_DIR = Path(__file__).resolve().parent / "locales"


def help_text(brand: Brand, language: str) -> str:
    _ = translations(LOCALE_DIR, language).gettext
    text = _("%(shop)s: updates about your orders. Help: %(email)s. Reply STOP to unsubscribe.")
    return text % {"shop": brand.name, "email": brand.support_email}


def start_text(brand: Brand, language: str) -> str:
    _ = translations(LOCALE_DIR, language).gettext
    text = _("%(shop)s: you will get our messages again. Reply STOP to unsubscribe, HELP for help.")
    return text % {"shop": brand.name}


def language_of(stored_locales: Sequence[str | None]) -> str:
    """The one language the stored locales agree on, else English."""
    languages = available_languages(LOCALE_DIR)
    found = {
        language
        for locale in stored_locales
        if (language := resolve_language(locale, languages)) is not None
    }
    return next(iter(found)) if len(found) == 1 else DEFAULT_LANGUAGE


async def reply_language(
    sessions: async_sessionmaker[AsyncSession], customer_ids: Sequence[str]
) -> str:
    """The language to answer the customers ``customer_ids`` of one number in."""
    if not customer_ids:
        return DEFAULT_LANGUAGE
    async with sessions() as session:
        rows = await session.execute(
            select(CustomerPreferenceRecord.locale).where(
                CustomerPreferenceRecord.customer_id.in_(customer_ids)
            )
        )
        return language_of([locale for (locale,) in rows])
