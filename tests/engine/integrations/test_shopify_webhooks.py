"""Shopify's webhooks through the real stack: HTTP endpoint -> journey directory ->
Temporal -> worker -> SMTP sink, with the deliveries recorded in the database."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from aftercare.v1 import journey_pb2 as pb
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.routing import Route

from clients import JourneyNotFoundError
from engine.integrations.intake import JourneyIntake
from engine.integrations.shopify.deliveries import WebhookDeliveries
from engine.integrations.shopify.signature import ShopSecrets, sign
from engine.integrations.shopify.webhooks import SHOPIFY_PATH, ShopifyWebhooks
from engine.journeys.directory import JourneyDirectory
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.database.tables import ShopifyWebhookDelivery
from engine.platform.http_server import serve_http
from tests.conftest import Service
from tests.engine.integrations.shopify_payloads import (
    fulfillment,
    new_shopify_id,
    order_cancelled,
    order_created,
    refund,
)
from tests.support.waiting import eventually

SHOP = "northside-roasters.myshopify.com"
SECRET = "shpss_" + "7f3a9c1e5b2d8f4a6c0e9b7d5f3a1c8e"


@dataclass
class Shop:
    """Shopify, as far as the endpoint can tell: signed POSTs with its headers."""

    http: httpx.AsyncClient
    url: str
    sessions: async_sessionmaker[AsyncSession]

    async def deliver(
        self,
        topic: str,
        payload: dict[str, Any] | bytes,
        *,
        webhook_id: str | None = None,
        secret: str = SECRET,
        signature: str | None = None,
        shop: str = SHOP,
    ) -> httpx.Response:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Shopify-Topic": topic,
            "X-Shopify-Hmac-Sha256": signature if signature is not None else sign(secret, body),
            "X-Shopify-Shop-Domain": shop,
            "X-Shopify-Webhook-Id": webhook_id or str(uuid.uuid4()),
            "X-Shopify-API-Version": "2025-10",
            "X-Shopify-Triggered-At": "2026-11-30T15:12:39.123Z",
        }
        return await self.http.post(self.url, content=body, headers=headers)

    async def recorded(self, webhook_id: str) -> int:
        async with self.sessions() as session:
            count = await session.scalar(
                select(func.count())
                .select_from(ShopifyWebhookDelivery)
                .where(ShopifyWebhookDelivery.webhook_id == webhook_id)
            )
            return int(count or 0)


@pytest.fixture
async def shop(service: Service) -> AsyncIterator[Shop]:
    engine = create_engine(service.settings.resolved_database_url)
    sessions = create_session_factory(engine)
    directory = JourneyDirectory(service.temporal, service.settings.task_queue)
    webhooks = ShopifyWebhooks(
        ShopSecrets({SHOP: SECRET}), JourneyIntake(directory), WebhookDeliveries(sessions)
    )
    app = Starlette(routes=[Route(SHOPIFY_PATH, webhooks.receive, methods=["POST"])])
    async with (
        serve_http(app, "127.0.0.1", 0) as server,
        httpx.AsyncClient(timeout=30) as http,
    ):
        yield Shop(http, f"{server.url}{SHOPIFY_PATH}", sessions)
    await engine.dispose()


def steps(mails: list[Any]) -> list[str]:
    return [mail.message["X-Aftercare-Step"] for mail in mails]


async def test_an_order_starts_its_journey_once(service: Service, shop: Shop) -> None:
    order_id = new_shopify_id()
    email = f"maya-{order_id}@example.com"
    delivery = str(uuid.uuid4())
    answer = await shop.deliver(
        "orders/create", order_created(order_id, email), webhook_id=delivery
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"outcome": "started", "journey_id": f"order-{order_id}"}

    [confirmation] = await service.mails_for(f"order-{order_id}", 1)
    assert confirmation.recipients == [email]
    body = confirmation.message.get_body(preferencelist=("plain",))
    assert body is not None
    text = body.get_content()
    assert "Pour-over Coffee Beans" in text
    assert "Glass Dripper" in text

    # Shopify's retry of the same delivery: answered at once, nothing changes.
    again = await shop.deliver("orders/create", order_created(order_id, email), webhook_id=delivery)
    assert again.json() == {"outcome": "duplicate", "earlier_outcome": "started"}
    assert await shop.recorded(delivery) == 1
    # Another delivery of the same order (Shopify may send one twice): the same journey.
    other = await shop.deliver("orders/create", order_created(order_id, email))
    assert other.json()["outcome"] == "already_running"
    assert len(await service.mails_for(f"order-{order_id}", 1)) == 1


async def test_fulfillments_move_the_journey_to_delivered(service: Service, shop: Shop) -> None:
    order_id, fulfillment_id = new_shopify_id(), new_shopify_id()
    journey_id = f"order-{order_id}"
    assert (await shop.deliver("orders/create", order_created(order_id))).status_code == 200
    await service.mails_for(journey_id, 1)

    created = await shop.deliver("fulfillments/create", fulfillment(order_id, fulfillment_id))
    assert created.json() == {"outcome": "recorded", "journey_id": journey_id}
    mails = await service.mails_for(journey_id, 2)
    assert steps(mails) == ["order_confirmation", "shipping_notice"]
    notice = mails[1].message.get_body(preferencelist=("plain",))
    assert notice is not None
    assert "1Z999AA10123456784" in notice.get_content()

    # The carrier's words, as fulfillments/update reports them.
    for status in ("in_transit", "out_for_delivery", "attempted_delivery", "delivered"):
        answer = await shop.deliver(
            "fulfillments/update", fulfillment(order_id, fulfillment_id, status)
        )
        assert answer.status_code == 200, answer.text
        expected = "nothing_to_do" if status == "attempted_delivery" else "recorded"
        assert answer.json()["outcome"] == expected

    journey = await eventually(
        lambda: service.client.get_journey(str(order_id)),
        lambda j: j.stage == pb.JOURNEY_STAGE_DELIVERED,
    )
    # in_transit after the create's "shipped" is the same event id: taken once.
    assert sum("duplicate event" in entry.detail for entry in journey.timeline) == 1


async def test_a_cancellation_and_a_refund_reach_the_journey(service: Service, shop: Shop) -> None:
    cancelled_id, refunded_id = new_shopify_id(), new_shopify_id()
    for order_id in (cancelled_id, refunded_id):
        assert (await shop.deliver("orders/create", order_created(order_id))).status_code == 200

    answer = await shop.deliver("orders/cancelled", order_cancelled(cancelled_id))
    assert answer.json()["outcome"] == "recorded"
    journey = await eventually(
        lambda: service.client.get_journey(str(cancelled_id)),
        lambda j: j.stage == pb.JOURNEY_STAGE_ORDER_CANCELLED,
    )
    assert journey.stage == pb.JOURNEY_STAGE_ORDER_CANCELLED

    answer = await shop.deliver("refunds/create", refund(refunded_id, new_shopify_id()))
    assert answer.json()["outcome"] == "recorded"
    journey = await eventually(
        lambda: service.client.get_journey(str(refunded_id)),
        lambda j: any("refunded" in entry.detail for entry in j.timeline),
    )
    assert any("variant-45012233478334" in entry.detail for entry in journey.timeline)


async def test_a_forged_or_altered_delivery_is_refused_and_changes_nothing(
    service: Service, shop: Shop
) -> None:
    order_id = new_shopify_id()
    body = json.dumps(order_created(order_id)).encode()
    genuine = sign(SECRET, body)
    attempts = [
        # Signed with another secret.
        await shop.deliver("orders/create", body, secret="shpss_someone-elses-secret-000000"),
        # Signed, then altered on the way (a different email).
        await shop.deliver(
            "orders/create", body.replace(b"maya.lindqvist@", b"mallory@"), signature=genuine
        ),
        # A genuine signature presented by a shop that is not configured.
        await shop.deliver("orders/create", body, signature=genuine, shop="evil.myshopify.com"),
        # No signature at all.
        await shop.deliver("orders/create", body, signature=""),
    ]
    assert [a.status_code for a in attempts] == [401, 401, 401, 401]
    with pytest.raises(JourneyNotFoundError):
        await service.client.get_journey(str(order_id))


async def test_an_invalid_order_is_refused_naming_the_shopify_field(
    service: Service, shop: Shop
) -> None:
    order_id = new_shopify_id()
    body = order_created(order_id)
    body["line_items"][0]["quantity"] = 0
    body["shipping_address"]["country_code"] = "XX"
    delivery = str(uuid.uuid4())
    answer = await shop.deliver("orders/create", body, webhook_id=delivery)
    assert answer.status_code == 422
    fields = {entry["field"] for entry in answer.json()["fields"]}
    assert {"line_items[0].quantity", "shipping_address.country_code"} <= fields
    # The API's arithmetic, in Shopify's terms: the line no longer adds up.
    assert "total_line_items_price" in fields
    assert await shop.recorded(delivery) == 0  # a corrected retry would be acted on
    with pytest.raises(JourneyNotFoundError):
        await service.client.get_journey(str(order_id))

    not_json = await shop.deliver("orders/create", b"{not json")
    assert not_json.status_code == 400


async def test_an_event_before_its_order_is_retried_by_shopify(
    service: Service, shop: Shop
) -> None:
    order_id, fulfillment_id = new_shopify_id(), new_shopify_id()
    delivery = str(uuid.uuid4())
    early = await shop.deliver(
        "fulfillments/create", fulfillment(order_id, fulfillment_id), webhook_id=delivery
    )
    assert early.status_code == 409  # not 2xx: Shopify delivers it again later
    assert await shop.recorded(delivery) == 0

    assert (await shop.deliver("orders/create", order_created(order_id))).status_code == 200
    retried = await shop.deliver(
        "fulfillments/create", fulfillment(order_id, fulfillment_id), webhook_id=delivery
    )
    assert retried.json()["outcome"] == "recorded"
    assert steps(await service.mails_for(f"order-{order_id}", 2)) == [
        "order_confirmation",
        "shipping_notice",
    ]


async def test_a_topic_journeys_do_not_use_is_acknowledged(shop: Shop) -> None:
    answer = await shop.deliver("products/update", {"id": 1, "title": "Glass Dripper"})
    assert answer.status_code == 200
    assert answer.json() == {"outcome": "topic_not_handled"}
