"""Whether a plan's or a step's order conditions hold for an order.

Pure and deterministic (no clock, no I/O), so workflow code can call it as well as
the activity that picks a plan.
"""

from __future__ import annotations

from workflows.orders import Order
from workflows.plans.model import Conditions, Segment


def segment_of(order: Order) -> Segment:
    """First-time buyer when the customer placed no order before this one."""
    return Segment.FIRST_TIME if order.customer.previous_orders == 0 else Segment.REPEAT


def order_matches(conditions: Conditions, order: Order) -> bool:
    """True when every order condition given in ``conditions`` holds for ``order``.

    - ``segment``: see :func:`segment_of`;
    - ``min_order_value_minor`` / ``max_order_value_minor``: inclusive bounds on
      ``order.total_minor``;
    - ``categories``: at least one line item is in one of them (exact match);
    - ``countries``: the shipping address's country code is one of them (compared
      in upper case, as ISO 3166 writes them).

    ``min_score`` / ``max_score`` are *ignored* here: they describe a feedback
    event, not the order, and are checked against the score where that event is
    handled. Empty ``Conditions`` always hold.
    """
    if conditions.segment is not None and segment_of(order) != conditions.segment:
        return False
    low, high = conditions.min_order_value_minor, conditions.max_order_value_minor
    if low is not None and order.total_minor < low:
        return False
    if high is not None and order.total_minor > high:
        return False
    if conditions.categories:
        wanted = set(conditions.categories)
        if not any(item.category in wanted for item in order.items):
            return False
    if conditions.countries:
        country = order.shipping_address.country_code.upper()
        if country not in {code.upper() for code in conditions.countries}:
            return False
    return True
