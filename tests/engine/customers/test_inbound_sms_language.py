"""The answers to HELP and START speak the language the number's customers stored
(``UpdatePreferences``), on the served app with a real database; English when they
stored none, one we have no catalog for, or languages that disagree."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from engine.customers.keyword_replies import help_text, language_of, start_text
from engine.messaging.phone_index import PhoneIndex, phone_index_key
from engine.platform.database.tables import CustomerPreferenceRecord
from tests.engine.customers.pages.support import SECRET, Served, served_app
from tests.engine.customers.test_inbound_sms import (
    AUTH_TOKEN,
    BRAND,
    inbound,
    new_number,
    reply_of,
    text_in,
)

HELP_REPLIES = {
    "en": f"{BRAND.name}: updates about your orders. Help: {BRAND.support_email}."
    " Reply STOP to unsubscribe.",
    "de": f"{BRAND.name}: Neuigkeiten zu Ihren Bestellungen. Hilfe: {BRAND.support_email}."
    " Antworten Sie STOP zum Abbestellen.",
    "fr": f"{BRAND.name}: des nouvelles de vos commandes. Aide : {BRAND.support_email}."
    " Répondez STOP pour vous désabonner.",
    "es": f"{BRAND.name}: novedades sobre tus pedidos. Ayuda: {BRAND.support_email}."
    " Responde STOP para darte de baja.",
}
START_OPENINGS = {
    "en": "you will get our messages again",
    "de": "Sie erhalten wieder unsere Nachrichten",
    "fr": "vous recevrez de nouveau nos messages",
    "es": "ya puedes recibir de nuevo nuestros mensajes",
}


@pytest.fixture
def phones(db_sessions: async_sessionmaker[AsyncSession]) -> PhoneIndex:
    return PhoneIndex(db_sessions, phone_index_key(SECRET))


@pytest.fixture
async def served(db_engine: AsyncEngine, phones: PhoneIndex) -> AsyncIterator[Served]:
    async with served_app(
        db_engine, twilio_auth_token=AUTH_TOKEN, phones=phones, brand=BRAND
    ) as app:
        yield app


async def customer_at(served: Served, phones: PhoneIndex, number: str, locale: str | None) -> None:
    """A customer texted at ``number`` who stored ``locale`` (None: stored nothing)."""
    customer_id = f"cus-{number[-7:]}-{locale}"
    await phones.remember(number, customer_id)
    if locale is not None:
        async with served.sessions() as session, session.begin():
            await session.execute(
                insert(CustomerPreferenceRecord).values(customer_id=customer_id, locale=locale)
            )


# What the customers texted at one number stored, and the language they are answered in.
CASES: list[tuple[list[str | None], str]] = [
    (["fr-FR"], "fr"),
    (["es"], "es"),
    (["de-AT"], "de"),
    (["en-GB"], "en"),
    ([None], "en"),
    (["ja"], "en"),  # no catalog for it
    (["fr", "fr-CA"], "fr"),  # two customers of one number, one language
    (["es", None], "es"),
    (["fr", "de"], "en"),  # they disagree: the fallback
    ([], "en"),  # a number nobody was texted at
]


async def test_help_speaks_the_language_the_customers_stored(
    served: Served, phones: PhoneIndex
) -> None:
    # One served app for every case (each its own number): starting one is the slow part.
    for stored, language in CASES:
        number = new_number()
        for locale in stored:
            await customer_at(served, phones, number, locale)

        reply = reply_of(await text_in(served, inbound("Help", number)))

        assert reply == HELP_REPLIES[language], stored


async def test_start_confirms_in_the_customers_language(served: Served, phones: PhoneIndex) -> None:
    for language in ("fr", "es", "de"):
        number = new_number()
        await customer_at(served, phones, number, language)
        assert reply_of(await text_in(served, inbound("STOP", number))) is None

        reply = reply_of(await text_in(served, inbound("start", number)))

        assert reply is not None
        assert reply.startswith(f"{BRAND.name}: {START_OPENINGS[language]}")
        assert "STOP" in reply
        assert "HELP" in reply
        assert await served.consent.allows(f"cus-{number[-7:]}-{language}", "sms", "feedback")


def test_every_language_names_the_shop_and_its_support() -> None:
    for language in HELP_REPLIES:
        assert help_text(BRAND, language) == HELP_REPLIES[language]
        assert start_text(BRAND, language).startswith(f"{BRAND.name}: ")
    assert language_of([]) == "en"
    assert language_of(["not a tag!", "xx"]) == "en"
