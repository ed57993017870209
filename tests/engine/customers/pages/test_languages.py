"""The customer pages speak the customer's language: the one their link names (the
language of the message that carried it), else the browser's, else English; in French
and Spanish as in English and German. Served by uvicorn on a SQLite database."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from activities.channels.email import LinkBuilder
from engine.customers.feedback_responses import FeedbackResponses
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.database.migrate import upgrade_database
from engine.platform.links.tokens import LinkPurpose, LinkSigner
from tests.engine.customers.pages.support import (
    PUBLIC_BASE_URL,
    SAME_ORIGIN,
    SECRET,
    Served,
    served_app,
    signer_at,
)
from tests.support.databases import sqlite_url
from tests.support.marks import TEST_MARKS
from tests.support.orders import domain_order
from workflows.contracts import SendMessageInput
from workflows.orders import OrderEvent
from workflows.vocabulary import Channel

CUSTOMER = "cus-lang"
JOURNEY = "order-L-1"


class NoJourneyReached:
    """The feedback page's way to journeys: these tests never get that far (they
    read pages and send answers it refuses before telling a journey)."""

    async def record_event(self, order_id: str, event: OrderEvent) -> str:
        raise AssertionError("no answer in these tests reaches a journey")


@pytest.fixture(scope="module")
async def served(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Served]:
    # One server for the module: every test's links are for a customer of its own.
    url = sqlite_url(tmp_path_factory.mktemp("languages"))
    upgrade_database(url)
    engine = create_engine(url)
    try:
        async with served_app(
            engine,
            journeys=NoJourneyReached(),
            feedback_responses=FeedbackResponses(create_session_factory(engine), TEST_MARKS),
        ) as app:
            yield app
    finally:
        await engine.dispose()


def path(served: Served, prefix: str, purpose: LinkPurpose, customer: str = "") -> str:
    customer = customer or f"cus-{uuid.uuid4().hex[:10]}"
    return f"/{prefix}/{served.signer.sign(purpose, customer, JOURNEY)}"


def assert_speaks(response: httpx.Response, language: str, *texts: str) -> None:
    assert f'<html lang="{language}">' in response.text
    for text in texts:
        assert text in response.text, text


PREFERENCES = {
    "en": ("Your message preferences", "Save preferences", "Offers and reminders"),
    "de": ("Ihre Nachrichteneinstellungen", "Einstellungen speichern", "Angebote und Erinnerungen"),
    "fr": ("Vos préférences de communication", "Enregistrer mes préférences", "Offres et rappels"),
    "es": ("Tus preferencias de mensajes", "Guardar preferencias", "Ofertas y recordatorios"),
}


@pytest.mark.parametrize("language", ["fr", "es", "de"])
async def test_the_preference_centre_speaks_the_links_language(
    served: Served, language: str
) -> None:
    link = path(served, "p", LinkPurpose.PREFERENCES)
    shown = await served.http.get(f"{link}?lang={language}")
    assert shown.status_code == 200
    assert_speaks(shown, language, *PREFERENCES[language])
    assert PREFERENCES["en"][0] not in shown.text
    # The form posts back to the same URL, so the answer speaks it too.
    token = link.rsplit("/", 1)[1]
    saved = await served.http.post(
        f"{link}?lang={language}",
        data={"token": token, "email.marketing": "on"},
        headers=SAME_ORIGIN,
    )
    assert saved.status_code == 200
    expected = {
        "fr": "Enregistré. Vos choix s\N{RIGHT SINGLE QUOTATION MARK}appliquent dès maintenant.",
        "es": "Guardado. Tus preferencias se aplican a partir de ahora.",
        "de": "Gespeichert. Ihre Auswahl gilt ab sofort.",
    }
    assert_speaks(saved, language, expected[language])


@pytest.mark.parametrize(
    ("language", "button", "done"),
    [
        ("fr", "Se désabonner", "Vous ne recevrez plus nos messages promotionnels."),
        ("es", "Darse de baja", "Ya no recibirás nuestros mensajes promocionales."),
    ],
)
async def test_the_unsubscribe_page_speaks_the_links_language(
    served: Served, language: str, button: str, done: str
) -> None:
    customer = f"cus-unsubscribe-{language}"
    link = f"{path(served, 'u', LinkPurpose.UNSUBSCRIBE, customer)}?lang={language}"
    asked = await served.http.get(link)
    assert asked.status_code == 200
    assert_speaks(asked, language, f'<button type="submit">{button}</button>')
    # RFC 8058 one-click from the mail client, to the URL in List-Unsubscribe.
    answered = await served.http.post(link, data={"List-Unsubscribe": "One-Click"})
    assert answered.status_code == 200
    assert_speaks(answered, language, done)
    assert not await served.consent.allows(customer, "email", "marketing")


@pytest.mark.parametrize(
    ("language", "texts", "refusal"),
    [
        (
            "fr",
            ("Comment avons-nous fait ?", "Vous avez choisi 9.", "Envoyer ma réponse"),
            "Une note est requise : choisissez un nombre de 0 à 10.",
        ),
        (
            "es",
            ("¿Qué tal lo hemos hecho?", "Has elegido 9.", "Enviar mi respuesta"),
            "La puntuación es obligatoria: elige un número del 0 al 10.",
        ),
    ],
)
async def test_the_feedback_page_speaks_the_links_language(
    served: Served, language: str, texts: tuple[str, ...], refusal: str
) -> None:
    link = path(served, "f", LinkPurpose.FEEDBACK)
    shown = await served.http.get(f"{link}?lang={language}&score=9")
    assert shown.status_code == 200
    assert_speaks(shown, language, *texts)
    token = link.rsplit("/", 1)[1]
    refused = await served.http.post(
        f"{link}?lang={language}", data={"token": token, "comment": "x"}, headers=SAME_ORIGIN
    )
    assert refused.status_code == 400
    assert_speaks(refused, language, refusal)


async def test_error_pages_speak_it_too(served: Served) -> None:
    invalid = await served.http.get("/p/not-a-token?lang=es")
    assert invalid.status_code == 400
    assert_speaks(invalid, "es", "Enlace no válido")
    old = signer_at(datetime.now(UTC) - timedelta(days=90))
    expired = await served.http.get(
        f"/f/{old.sign(LinkPurpose.FEEDBACK, CUSTOMER, JOURNEY)}?lang=fr"
    )
    assert expired.status_code == 410
    assert_speaks(
        expired, "fr", "Lien expiré", "Ce lien d\N{RIGHT SINGLE QUOTATION MARK}avis a expiré."
    )
    cross = await served.http.post(
        f"{path(served, 'p', LinkPurpose.PREFERENCES)}?lang=fr",
        data={},
        headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
    )
    assert cross.status_code == 403
    assert_speaks(cross, "fr", "Ce formulaire a été envoyé depuis un autre site web.")


@pytest.mark.parametrize(
    ("query", "accept_language", "expected"),
    [
        ("", "es-MX,es;q=0.9,en;q=0.5", "es"),  # no language in the link: the browser's
        ("", "ja, fr-CA;q=0.5", "fr"),  # the first one we have
        ("?lang=fr-FR", "de", "fr"),  # the link's wins over the browser's
        ("?lang=ja", "", "en"),  # one we do not have: English
        ("?lang=xx-unknown", "ko", "en"),
        ("?lang=%3Cscript%3E", "", "en"),  # not a language tag at all
        ("", "", "en"),
    ],
)
async def test_the_language_falls_back_to_the_browsers_then_english(
    served: Served, query: str, accept_language: str, expected: str
) -> None:
    headers = {"Accept-Language": accept_language} if accept_language else {}
    shown = await served.http.get(
        path(served, "p", LinkPurpose.PREFERENCES) + query, headers=headers
    )
    assert shown.status_code == 200
    assert_speaks(shown, expected, PREFERENCES[expected][0])


def request_in(locale: str) -> SendMessageInput:
    return SendMessageInput(
        journey_id=JOURNEY,
        step="cross_sell",
        template="cross_sell",
        category="marketing",
        channel=Channel.EMAIL,
        order=domain_order(locale=locale, customer_id=CUSTOMER),
    )


async def test_message_links_name_the_language_the_message_is_written_for(
    served: Served,
) -> None:
    builder = LinkBuilder(
        shop_url="https://shop.example",
        public_base_url=PUBLIC_BASE_URL,
        signer=LinkSigner(SECRET),
    )
    links = builder.for_request(request_in("es-MX"))
    for page in ("unsubscribe", "preferences", "feedback"):
        assert links[page].startswith(PUBLIC_BASE_URL)
        assert links[page].endswith("?lang=es-MX")
    # Followed, the link opens the page in the message's language.
    shown = await served.http.get(links["preferences"].removeprefix(PUBLIC_BASE_URL))
    assert_speaks(shown, "es", PREFERENCES["es"][0])
    # A locale from shop data that is no language tag never reaches the URL.
    odd = builder.for_request(request_in("fr\r\nBcc: x"))
    assert "lang=" not in odd["unsubscribe"]
