"""Shopify webhook bodies for the tests: the fixtures under tests/fixtures/shopify
(written to Shopify's documented REST shapes) with fresh ids per test."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "shopify"


def load(name: str) -> dict[str, Any]:
    data = json.loads((FIXTURES / f"{name}.json").read_text())
    assert isinstance(data, dict)
    return data


def new_shopify_id() -> int:
    """A Shopify-like 13-digit id no other test uses."""
    return random.randrange(10**12, 10**13)


def order_created(order_id: int, email: str = "maya.lindqvist@example.com") -> dict[str, Any]:
    order = load("orders_create")
    order["id"] = order_id
    order["email"] = order["contact_email"] = email
    return order


def order_cancelled(order_id: int) -> dict[str, Any]:
    """``orders/cancelled`` carries the whole order, now with its cancellation."""
    order = order_created(order_id)
    order["cancelled_at"] = "2026-11-30T11:02:00-05:00"
    order["cancel_reason"] = "customer"
    order["financial_status"] = "refunded"
    return order


def fulfillment(
    order_id: int, fulfillment_id: int, shipment_status: str | None = None
) -> dict[str, Any]:
    body = load("fulfillments_create")
    body["id"] = fulfillment_id
    body["order_id"] = order_id
    body["shipment_status"] = shipment_status
    if shipment_status is not None:
        body["updated_at"] = "2026-12-02T08:15:00-05:00"
    return body


def refund(order_id: int, refund_id: int) -> dict[str, Any]:
    body = copy.deepcopy(load("refunds_create"))
    body["id"] = refund_id
    body["order_id"] = order_id
    return body
