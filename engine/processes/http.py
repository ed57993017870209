"""The HTTP app wired to its database, for ``aftercare run`` and ``aftercare http``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette

from engine.customers.consent import ConsentLedger
from engine.customers.feedback_responses import FeedbackResponses
from engine.customers.preferences import PreferenceStore
from engine.journeys.directory import JourneyDirectory
from engine.messaging.ledger import MessageLedger
from engine.messaging.phone_index import PhoneIndex, phone_index_key
from engine.messaging.suppressions import SuppressionList
from engine.platform.brand import brand_from_settings
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.links.secret import load_or_create_secret
from engine.platform.links.tokens import LinkSigner
from engine.platform.settings import Settings
from engine.platform.temporal.connection import connect
from engine.processes.http_app import build_http_app
from engine.processes.lazy_journeys import ConnectingJourneys


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
