"""Shopify's fulfillment JSON (``fulfillments/create``, ``fulfillments/update``) and
refund JSON (``refunds/create``) as the API's ``RecordEventRequest``.

A fulfillment's ``status`` says whether the goods left (``success``); its
``shipment_status`` is the carrier's latest word (``in_transit``,
``out_for_delivery``, ``delivered``, ``attempted_delivery``, ``failure``...). Only
what a journey reacts to becomes an event; the rest (a label printed, a failed
attempt) is acknowledged and changes nothing. Event ids come from the fulfillment
or refund, not from the delivery: Shopify announcing the same fact twice (a create,
then an update with the same status) is one event to the journey.
"""

from __future__ import annotations

from aftercare.v1 import journey_pb2 as pb

from engine.integrations.shopify.orders import line_item_sku
from engine.integrations.shopify.payload import Payload

_SHIPMENT_EVENTS = {
    "in_transit": pb.EVENT_TYPE_SHIPPED,
    "out_for_delivery": pb.EVENT_TYPE_OUT_FOR_DELIVERY,
    "delivered": pb.EVENT_TYPE_DELIVERED,
}
# Before the carrier reports anything, a successful fulfillment means the parcel
# left the shop: shipped.
_NOT_YET_MOVING = frozenset({None, "", "confirmed", "label_printed", "label_purchased"})
_EVENT_NAMES = {
    pb.EVENT_TYPE_SHIPPED: "shipped",
    pb.EVENT_TYPE_OUT_FOR_DELIVERY: "out_for_delivery",
    pb.EVENT_TYPE_DELIVERED: "delivered",
}


def fulfillment_request(body: Payload) -> pb.RecordEventRequest | None:
    """The event the fulfillment reports; None when it reports nothing a journey
    reacts to."""
    fulfillment_id = body.identifier("id")
    order_id = body.identifier("order_id")
    status = body.text("shipment_status") or None
    if status in _SHIPMENT_EVENTS:
        event_type = _SHIPMENT_EVENTS[status]
    elif status in _NOT_YET_MOVING and body.text("status") == "success":
        event_type = pb.EVENT_TYPE_SHIPPED
    else:
        return None
    event = pb.OrderEvent(
        event_id=f"shopify-fulfillment-{fulfillment_id}-{_EVENT_NAMES[event_type]}",
        type=event_type,
    )
    happened = body.timestamp("updated_at") or body.timestamp("created_at")
    if happened is not None:
        event.occurred_at.CopyFrom(happened)
    if event_type == pb.EVENT_TYPE_SHIPPED:
        event.shipment.CopyFrom(_shipment(body))
    return pb.RecordEventRequest(order_id=order_id, event=event)


def refund_request(body: Payload) -> pb.RecordEventRequest | None:
    """A refund of line items; None for one of shipping or an adjustment only (the
    journey's follow-ups for the goods still fit)."""
    refund_id = body.identifier("id")
    order_id = body.identifier("order_id")
    skus: list[str] = []
    for refunded in body.children("refund_line_items"):
        line = refunded.child("line_item")
        sku = line_item_sku(line) if line is not None else ""
        if not sku and refunded.has("line_item_id"):
            sku = f"line-{refunded.text('line_item_id')}"
        if sku and sku not in skus:
            skus.append(sku)
    if not skus:
        return None
    event = pb.OrderEvent(
        event_id=f"shopify-refund-{refund_id}", type=pb.EVENT_TYPE_REFUNDED, skus=skus
    )
    happened = body.timestamp("created_at")
    if happened is not None:
        event.occurred_at.CopyFrom(happened)
    return pb.RecordEventRequest(order_id=order_id, event=event)


def _shipment(body: Payload) -> pb.Shipment:
    numbers = [n for n in _strings(body, "tracking_numbers") if n]
    urls = [u for u in _strings(body, "tracking_urls") if u]
    return pb.Shipment(
        carrier=body.text("tracking_company"),
        tracking_number=body.text("tracking_number") or (numbers[0] if numbers else ""),
        tracking_url=body.text("tracking_url") or (urls[0] if urls else ""),
    )


def _strings(body: Payload, key: str) -> list[str]:
    value = body.data.get(key)
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, str)]
