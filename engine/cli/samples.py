"""Realistic sample orders for ``aftercare demo``, ``aftercare journey start --sample``
and the tests: a few shops' worth of customers, locales and baskets."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from aftercare.v1 import journey_pb2 as pb


@dataclass(frozen=True)
class SampleCustomer:
    id: str
    name: str
    email: str
    phone: str
    locale: str
    timezone: str
    address: pb.Address


_CUSTOMERS = [
    SampleCustomer(
        "cus_1001",
        "Maya Lindqvist",
        "maya.lindqvist@example.com",
        "+46 70 123 45 67",
        "en",
        "Europe/Stockholm",
        pb.Address(
            name="Maya Lindqvist",
            line1="Södermannagatan 12",
            city="Stockholm",
            postal_code="116 40",
            country_code="SE",
        ),
    ),
    SampleCustomer(
        "cus_1002",
        "Jonas Becker",
        "jonas.becker@example.de",
        "+49 151 23456789",
        "de-DE",
        "Europe/Berlin",
        pb.Address(
            name="Jonas Becker",
            line1="Kastanienallee 7",
            city="Berlin",
            postal_code="10435",
            country_code="DE",
        ),
    ),
    SampleCustomer(
        "cus_1003",
        "Aroha Ngata",
        "aroha.ngata@example.co.nz",
        "+64 21 123 4567",
        "en-NZ",
        "Pacific/Auckland",
        pb.Address(
            name="Aroha Ngata",
            line1="24 Ponsonby Road",
            city="Auckland",
            postal_code="1011",
            country_code="NZ",
        ),
    ),
]

_BASKETS = [
    [
        pb.LineItem(
            sku="COF-ETH-500",
            name="Ethiopia Yirgacheffe beans 500 g",
            category="coffee",
            quantity=2,
            unit_price_minor=1450,
            consumption_days=14,
        ),
        pb.LineItem(
            sku="GRD-HND-01",
            name="Hand grinder, ceramic burr",
            category="equipment",
            quantity=1,
            unit_price_minor=4900,
        ),
    ],
    [
        pb.LineItem(
            sku="TSH-ORG-M",
            name="Organic cotton T-shirt, M",
            category="apparel",
            quantity=3,
            unit_price_minor=2500,
        ),
    ],
    [
        pb.LineItem(
            sku="SKN-SER-30",
            name="Vitamin C serum 30 ml",
            category="skincare",
            quantity=1,
            unit_price_minor=3800,
            consumption_days=45,
        ),
        pb.LineItem(
            sku="SKN-SPF-50",
            name="Daily sunscreen SPF 50",
            category="skincare",
            quantity=2,
            unit_price_minor=2200,
            consumption_days=60,
        ),
    ],
]

_RECOMMENDATIONS = [
    [
        pb.Recommendation(sku="FLT-V60-02", name="Pour-over dripper, size 02"),
        pb.Recommendation(sku="COF-COL-250", name="Colombia Huila beans 250 g"),
    ],
    [
        pb.Recommendation(sku="SCK-ORG-3P", name="Organic cotton socks, 3 pairs"),
    ],
    [
        pb.Recommendation(sku="SKN-MST-50", name="Light moisturiser 50 ml"),
        pb.Recommendation(sku="SKN-CLN-150", name="Gentle cleanser 150 ml"),
    ],
]

_CURRENCIES = {"SE": "SEK", "DE": "EUR", "NZ": "NZD"}


def sample_order(order_id: str, variant: int = 0) -> pb.Order:
    """A consistent order (totals add up) for customer/basket ``variant``."""
    customer = _CUSTOMERS[variant % len(_CUSTOMERS)]
    items = _BASKETS[variant % len(_BASKETS)]
    subtotal = sum(item.quantity * item.unit_price_minor for item in items)
    shipping = 490
    tax = round((subtotal + shipping) * 0.2)
    return pb.Order(
        order_id=order_id,
        customer=pb.Customer(
            id=customer.id,
            name=customer.name,
            email=customer.email,
            phone=customer.phone,
            locale=customer.locale,
            timezone=customer.timezone,
        ),
        items=items,
        currency=_CURRENCIES[customer.address.country_code],
        subtotal_minor=subtotal,
        shipping_minor=shipping,
        tax_minor=tax,
        total_minor=subtotal + shipping + tax,
        shipping_address=customer.address,
        recommendations=_RECOMMENDATIONS[variant % len(_RECOMMENDATIONS)],
    )


def sample_timezone(variant: int) -> str:
    """The time zone of customer ``variant`` of :func:`sample_order`."""
    return _CUSTOMERS[variant % len(_CUSTOMERS)].timezone


def sample_shipment(order_id: str) -> pb.Shipment:
    return pb.Shipment(
        carrier="DHL Express",
        tracking_number=f"JD0146{zlib.crc32(order_id.encode()) % 10**8:08d}",
        tracking_url=f"https://tracking.example/parcels/{order_id}",
    )
