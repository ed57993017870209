"""The HTTP app served by uvicorn on a real database, for the customer page tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from engine.customers.consent import ConsentLedger
from engine.messaging.ledger import MessageLedger
from engine.messaging.suppressions import SuppressionList
from engine.platform.database.connection import create_session_factory
from engine.platform.database.tables import Base
from engine.platform.http_server import serve_http
from engine.platform.links.tokens import LinkSigner
from engine.processes.http import build_http_app
from tests.support.marks import TEST_MARKS

SECRET = "customer-pages-test-secret"
PUBLIC_BASE_URL = "https://care.shop.example"
PUBLIC_ORIGIN = "https://care.shop.example"
# What a browser sends with a form posted from one of our own pages.
SAME_ORIGIN = {"Origin": PUBLIC_ORIGIN, "Sec-Fetch-Site": "same-origin"}


@dataclass
class Served:
    http: httpx.AsyncClient
    sessions: async_sessionmaker[AsyncSession]
    consent: ConsentLedger
    suppressions: SuppressionList
    signer: LinkSigner
    # Customer ids the on_consent_changed callback was called with, in order.
    told: list[str] = field(default_factory=list)

    async def count(self, table: type[Base]) -> int:
        async with self.sessions() as session:
            counted = await session.scalar(select(func.count()).select_from(table))
        assert isinstance(counted, int)
        return counted


@asynccontextmanager
async def served_app(
    db_engine: AsyncEngine,
    *,
    signer: LinkSigner | None = None,
    failing_callback: bool = False,
    **app_arguments: Any,
) -> AsyncIterator[Served]:
    """Serve the app; ``app_arguments`` are passed to build_http_app as they are."""
    sessions = create_session_factory(db_engine)
    told: list[str] = []

    async def on_consent_changed(customer_id: str) -> None:
        told.append(customer_id)
        if failing_callback:
            raise ConnectionError("temporal is down")

    arguments: dict[str, Any] = {
        "twilio_auth_token": None,
        "public_base_url": PUBLIC_BASE_URL,
        "on_consent_changed": on_consent_changed,
        **app_arguments,
    }
    app = build_http_app(
        ledger=MessageLedger(sessions),
        suppressions=SuppressionList(sessions),
        consent=ConsentLedger(sessions, TEST_MARKS),
        signer=signer or LinkSigner(SECRET),
        **arguments,
    )
    async with (
        serve_http(app, "127.0.0.1", 0) as server,
        httpx.AsyncClient(base_url=server.url, trust_env=False, timeout=30) as http,
    ):
        yield Served(
            http=http,
            sessions=sessions,
            consent=ConsentLedger(sessions, TEST_MARKS),
            suppressions=SuppressionList(sessions),
            signer=LinkSigner(SECRET),
            told=told,
        )


def signer_at(moment: datetime) -> LinkSigner:
    """A signer whose tokens look issued at ``moment`` (for expired links)."""
    return LinkSigner(SECRET, clock=lambda: moment)


def assert_page(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "same-origin"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
