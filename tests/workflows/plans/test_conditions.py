"""``order_matches``: a plan's or a step's order conditions against an order."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.support.orders import domain_order
from workflows.orders import LineItem, Order
from workflows.plans.conditions import order_matches, segment_of
from workflows.plans.model import Conditions, Segment


def order(
    *,
    categories: tuple[str, ...] = ("apparel",),
    previous_orders: int = 0,
    total_minor: int = 5000,
    country: str = "DE",
) -> Order:
    base = domain_order(order_id="ORD-COND-1")
    items = [
        LineItem(sku=f"SKU-{i}", name=f"Item {i}", quantity=1, unit_price_minor=1000, category=c)
        for i, c in enumerate(categories)
    ]
    return replace(
        base,
        items=items,
        total_minor=total_minor,
        customer=replace(base.customer, previous_orders=previous_orders),
        shipping_address=replace(base.shipping_address, country_code=country),
    )


def test_empty_conditions_always_hold() -> None:
    assert order_matches(Conditions(), order())
    assert order_matches(Conditions(), order(categories=(), total_minor=0, country="")) is True


@pytest.mark.parametrize(
    ("previous_orders", "segment"),
    [(0, Segment.FIRST_TIME), (1, Segment.REPEAT), (7, Segment.REPEAT)],
)
def test_segment_follows_previous_orders(previous_orders: int, segment: Segment) -> None:
    placed = order(previous_orders=previous_orders)
    assert segment_of(placed) is segment
    assert order_matches(Conditions(segment=segment), placed)
    other = Segment.REPEAT if segment is Segment.FIRST_TIME else Segment.FIRST_TIME
    assert not order_matches(Conditions(segment=other), placed)


@pytest.mark.parametrize(
    ("low", "high", "total", "expected"),
    [
        (5000, None, 5000, True),  # bounds are inclusive
        (5001, None, 5000, False),
        (None, 5000, 5000, True),
        (None, 4999, 5000, False),
        (1000, 9000, 5000, True),
        (1000, 9000, 9001, False),
        (1000, 9000, 999, False),
    ],
)
def test_order_value_bounds_on_the_total(
    low: int | None, high: int | None, total: int, expected: bool
) -> None:
    conditions = Conditions(min_order_value_minor=low, max_order_value_minor=high)
    assert order_matches(conditions, order(total_minor=total)) is expected


def test_categories_need_any_one_item_in_one_of_them() -> None:
    coffee = Conditions(categories=("coffee", "tea"))
    assert order_matches(coffee, order(categories=("coffee",)))
    assert order_matches(coffee, order(categories=("apparel", "tea")))
    assert not order_matches(coffee, order(categories=("apparel", "kitchen")))
    assert not order_matches(coffee, order(categories=()))
    assert not order_matches(coffee, order(categories=("",)))  # uncategorised items


def test_countries_compare_the_shipping_country_in_upper_case() -> None:
    dach = Conditions(countries=("DE", "AT", "CH"))
    assert order_matches(dach, order(country="AT"))
    assert order_matches(dach, order(country="at"))
    assert not order_matches(dach, order(country="FR"))


def test_all_given_conditions_must_hold() -> None:
    conditions = Conditions(
        segment=Segment.REPEAT,
        min_order_value_minor=2000,
        categories=("coffee",),
        countries=("DE",),
    )
    match = order(categories=("coffee",), previous_orders=2, total_minor=2500, country="DE")
    assert order_matches(conditions, match)
    assert not order_matches(conditions, replace(match, total_minor=1999))
    assert not order_matches(conditions, order(categories=("coffee",), total_minor=2500))
    assert not order_matches(
        conditions, order(categories=("tea",), previous_orders=2, total_minor=2500)
    )
    assert not order_matches(
        conditions,
        order(categories=("coffee",), previous_orders=2, total_minor=2500, country="FR"),
    )


def test_score_conditions_are_ignored_for_orders() -> None:
    # Scores belong to a feedback event; they are checked where that event is handled.
    assert order_matches(Conditions(min_score=9), order())
    assert order_matches(Conditions(max_score=0), order())
    assert not order_matches(Conditions(min_score=9, countries=("FR",)), order(country="DE"))


def test_is_pure() -> None:
    placed = order(categories=("coffee",))
    before = repr(placed)
    conditions = Conditions(categories=("coffee",))
    assert [order_matches(conditions, placed) for _ in range(3)] == [True, True, True]
    assert repr(placed) == before
