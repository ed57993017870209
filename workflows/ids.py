"""Journey ids: derived from the order id alone, so every caller finds the same journey."""

from __future__ import annotations

import re

ORDER_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
JOURNEY_ID_PREFIX = "order-"


def is_valid_order_id(order_id: str) -> bool:
    return ORDER_ID_PATTERN.fullmatch(order_id) is not None


def journey_id_for(order_id: str) -> str:
    return f"{JOURNEY_ID_PREFIX}{order_id}"


def order_id_from(journey_id: str) -> str:
    return journey_id.removeprefix(JOURNEY_ID_PREFIX)
