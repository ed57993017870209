"""The HTTP app wired to its database, for ``aftercare run`` and ``aftercare http``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette

from activities.email.brand import brand_from_settings
from engine.database.connection import create_engine, create_session_factory
from engine.database.consent import ConsentLedger
from engine.database.feedback_responses import FeedbackResponses
from engine.database.ledger import MessageLedger
from engine.database.phone_index import PhoneIndex, phone_index_key
from engine.database.preferences import PreferenceStore
from engine.database.suppressions import SuppressionList
from engine.http.app import build_http_app
from engine.http.lazy_journeys import ConnectingJourneys
from engine.journeys import JourneyDirectory
from engine.links.secret import load_or_create_secret
from engine.links.tokens import LinkSigner
from engine.settings import Settings
from engine.temporal import connect


@asynccontextmanager
async def http_app(settings: Settings) -> AsyncIterator[Starlette]:
    engine = create_engine(settings.resolved_database_url)
    sessions = create_session_factory(engine)
    token = settings.twilio_auth_token
    secret = load_or_create_secret(settings)
    signer = LinkSigner(secret)

    async def directory() -> JourneyDirectory:
        # With the preference store, so consent changes made on the pages reach
        # the customer's running journeys at once.
        client = await connect(settings)
        return JourneyDirectory(client, settings.task_queue, PreferenceStore(sessions))

    journeys = ConnectingJourneys(directory)

    try:
        yield build_http_app(
            ledger=MessageLedger(sessions),
            suppressions=SuppressionList(sessions),
            consent=ConsentLedger(sessions),
            signer=signer,
            twilio_auth_token=token.get_secret_value() if token else None,
            public_base_url=settings.public_base_url,
            brand=brand_from_settings(settings),
            journeys=journeys,
            feedback_responses=FeedbackResponses(sessions),
            phones=PhoneIndex(sessions, phone_index_key(secret)),
            on_consent_changed=journeys.notify_preferences_changed,
        )
    finally:
        await engine.dispose()
