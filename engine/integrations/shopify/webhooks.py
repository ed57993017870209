"""The HTTP endpoint Shopify delivers webhooks to (``POST /integrations/shopify/webhooks``).

One address for every topic (``X-Shopify-Topic``): ``orders/create`` starts the
order's journey, ``orders/cancelled`` cancels it, ``fulfillments/create`` and
``fulfillments/update`` report shipped / out for delivery / delivered, and
``refunds/create`` a refund of line items. What Shopify sees:

- 401: the HMAC does not match the shop's secret (or the shop is unknown). Nothing
  is read, nothing changes.
- 400: no webhook id, or a body that is not a JSON object.
- 422: a field is wrong; ``fields`` names each in Shopify's terms.
- 409: an event for an order whose journey does not exist yet (Shopify does not
  order its deliveries: the ``orders/create`` may still come). Shopify retries.
- 503: Temporal or our database is out of reach. Shopify retries (as it does a 500).
- 200: taken, or nothing to do (a topic or status journeys do not react to, a
  journey that has ended, an order no plan covers, a delivery acted on before).

Shopify retries every answer but a 2xx, up to 8 times over 4 hours; the
``X-Shopify-Webhook-Id`` of a delivery acted on is recorded, so its retries are
answered 200 and change nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from temporalio.service import RPCError

from engine.integrations.intake import Intake, JourneyRequest, RefusalKind, Refused
from engine.integrations.shopify import fulfillments, orders
from engine.integrations.shopify.deliveries import WebhookDeliveries
from engine.integrations.shopify.orders import in_shopify_terms
from engine.integrations.shopify.payload import Payload
from engine.integrations.shopify.signature import ShopSecrets
from engine.platform.logging import get_logger
from engine.platform.rpc.answers import DATABASE_UNREACHABLE
from engine.platform.rpc.violations import FieldViolation, Violations

log = get_logger(__name__)

SHOPIFY_PATH = "/integrations/shopify/webhooks"
# An order of a few hundred lines is well under 1 MiB of JSON.
SHOPIFY_MAX_BODY_BYTES = 2 * 1024 * 1024

_TOPICS: dict[str, Callable[[Payload], JourneyRequest | None]] = {
    "orders/create": orders.order_request,
    "orders/cancelled": orders.cancellation_request,
    "fulfillments/create": fulfillments.fulfillment_request,
    "fulfillments/update": fulfillments.fulfillment_request,
    "refunds/create": fulfillments.refund_request,
}
TOPICS = frozenset(_TOPICS)

# Refusals a retry cannot change: acknowledged (Shopify stops retrying) and recorded.
_SETTLED = {
    RefusalKind.ENDED: "journey_ended",
    RefusalKind.NO_PLAN: "no_plan",
    RefusalKind.ERASED: "customer_erased",
}


class ShopifyWebhooks:
    def __init__(self, secrets: ShopSecrets, intake: Intake, deliveries: WebhookDeliveries) -> None:
        self._secrets = secrets
        self._intake = intake
        self._deliveries = deliveries

    async def receive(self, request: Request) -> Response:
        body = await request.body()
        shop = request.headers.get("x-shopify-shop-domain", "")
        if not self._secrets.verify(shop, body, request.headers.get("x-shopify-hmac-sha256", "")):
            log.warning("shopify webhook refused: bad signature", shop=shop[:255])
            return _error(401, "the HMAC does not match this shop's secret")
        topic = request.headers.get("x-shopify-topic", "")
        webhook_id = request.headers.get("x-shopify-webhook-id", "").strip()
        if not webhook_id or len(webhook_id) > 100:
            return _error(400, "X-Shopify-Webhook-Id is required (at most 100 characters)")
        try:
            earlier = await self._deliveries.outcome_of(webhook_id)
        except DATABASE_UNREACHABLE:
            return _error(503, "the database is unreachable; retry")
        if earlier is not None:
            return _outcome("duplicate", earlier=earlier)
        convert = _TOPICS.get(topic)
        if convert is None:
            log.warning("shopify webhook of a topic not handled", topic=topic[:100], shop=shop)
            return await self._settle(webhook_id, shop, topic, "topic_not_handled")
        try:
            data = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return _error(400, "the body is not JSON")
        if not isinstance(data, dict):
            return _error(400, "the body must be a JSON object")
        violations = Violations()
        wanted = convert(Payload(data, violations))
        if violations.items:
            return _invalid(violations.items)
        if wanted is None:
            return await self._settle(webhook_id, shop, topic, "nothing_to_do")
        return await self._take(webhook_id, shop, topic, wanted)

    async def _take(
        self, webhook_id: str, shop: str, topic: str, wanted: JourneyRequest
    ) -> Response:
        try:
            taken = await self._intake.take(wanted)
        except Refused as refused:
            if refused.kind == RefusalKind.INVALID:
                return _invalid(refused.violations)
            if refused.kind == RefusalKind.NO_JOURNEY:
                return _error(409, f"{refused.reason}; retry once orders/create was delivered")
            return await self._settle(webhook_id, shop, topic, _SETTLED[refused.kind])
        except (RPCError, ConnectionError, TimeoutError, *DATABASE_UNREACHABLE) as err:
            # Temporal or the database out of reach: Shopify's retry will do.
            log.warning("shopify webhook not taken", topic=topic, error=type(err).__name__)
            return _error(503, "the journey store is unreachable; retry")
        except Exception:
            log.exception("shopify webhook failed", topic=topic)
            return _error(500, "internal error; the server logged it")
        if taken.created is None:
            outcome = "recorded"
        else:
            outcome = "started" if taken.created else "already_running"
        return await self._settle(webhook_id, shop, topic, outcome, taken.journey_id)

    async def _settle(
        self, webhook_id: str, shop: str, topic: str, outcome: str, journey_id: str = ""
    ) -> Response:
        try:
            await self._deliveries.record(webhook_id, shop, topic, outcome)
        except DATABASE_UNREACHABLE:
            # What it carried is idempotent in the journey: a retry does no harm.
            log.warning("shopify webhook taken but not recorded", webhook_id=webhook_id)
        log.info("shopify webhook", topic=topic, outcome=outcome, journey_id=journey_id)
        return _outcome(outcome, journey_id=journey_id)


def _outcome(outcome: str, *, journey_id: str = "", earlier: str = "") -> JSONResponse:
    body: dict[str, str] = {"outcome": outcome}
    if journey_id:
        body["journey_id"] = journey_id
    if earlier:
        body["earlier_outcome"] = earlier
    return JSONResponse(body)


def _invalid(violations: list[FieldViolation]) -> JSONResponse:
    named = in_shopify_terms(violations)
    return JSONResponse(
        {
            "error": "; ".join(f"{v.field}: {v.description}" for v in named),
            "fields": [{"field": v.field, "description": v.description} for v in named],
        },
        status_code=422,
    )


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)
