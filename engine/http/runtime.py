"""The HTTP app wired to its database, for ``aftercare run`` and ``aftercare http``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette

from engine.database.connection import create_engine, create_session_factory
from engine.database.consent import ConsentLedger
from engine.database.ledger import MessageLedger
from engine.database.suppressions import SuppressionList
from engine.http.app import build_http_app
from engine.links.secret import load_or_create_secret
from engine.links.tokens import LinkSigner
from engine.settings import Settings


@asynccontextmanager
async def http_app(settings: Settings) -> AsyncIterator[Starlette]:
    engine = create_engine(settings.resolved_database_url)
    sessions = create_session_factory(engine)
    token = settings.twilio_auth_token
    signer = LinkSigner(load_or_create_secret(settings))
    try:
        yield build_http_app(
            ledger=MessageLedger(sessions),
            suppressions=SuppressionList(sessions),
            consent=ConsentLedger(sessions),
            signer=signer,
            twilio_auth_token=token.get_secret_value() if token else None,
            public_base_url=settings.public_base_url,
        )
    finally:
        await engine.dispose()
