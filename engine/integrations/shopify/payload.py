"""Reading a Shopify webhook's JSON: typed getters that name Shopify's own field path
when a value is missing or of the wrong kind."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from babel.numbers import get_currency_precision
from google.protobuf.timestamp_pb2 import Timestamp

from engine.platform.rpc.violations import Violations, shown

JsonObject = dict[str, Any]


class Payload:
    """One JSON object of the webhook at ``path`` ("" for the body itself)."""

    def __init__(self, data: JsonObject, violations: Violations, path: str = "") -> None:
        self.data = data
        self.v = violations
        self.path = path

    def where(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def text(self, key: str) -> str:
        """A string (or a number, which Shopify sends for some ids); "" when absent."""
        value = self.data.get(key)
        if value is None:
            return ""
        if isinstance(value, bool) or not isinstance(value, str | int):
            self.v.add(self.where(key), "must be a string")
            return ""
        return str(value)

    def identifier(self, key: str) -> str:
        """Shopify's numeric ids (``id``, ``order_id``): required."""
        value = self.data.get(key)
        if isinstance(value, bool) or not isinstance(value, int | str) or value == "":
            self.v.add(self.where(key), "is required (Shopify's numeric id)")
            return ""
        return str(value)

    def integer(self, key: str, default: int = 0) -> int:
        value = self.data.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.v.add(self.where(key), "must be an integer")
            return default
        return value

    def flag(self, key: str) -> bool:
        value = self.data.get(key)
        if value is None:
            return False
        if not isinstance(value, bool):
            self.v.add(self.where(key), "must be true or false")
            return False
        return value

    def money(self, key: str, currency: str) -> int:
        """A decimal amount as Shopify sends it ("199.00") in minor units of
        ``currency``; 0 when absent."""
        value = self.data.get(key)
        if value is None or value == "":
            return 0
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            self.v.add(self.where(key), "must be a decimal amount")
            return 0
        try:
            amount = Decimal(str(value))
        except InvalidOperation:
            self.v.add(self.where(key), f"must be a decimal amount, got {shown(str(value))}")
            return 0
        if not amount.is_finite():
            self.v.add(self.where(key), "must be a decimal amount")
            return 0
        try:
            exponent = get_currency_precision(currency) if currency else 2
        except Exception:  # an unknown currency is named by the order's own check
            exponent = 2
        minor = amount.scaleb(exponent)
        if minor != minor.to_integral_value():
            self.v.add(self.where(key), f"has more decimals than {currency or 'the currency'} has")
        return int(minor)

    def timestamp(self, key: str) -> Timestamp | None:
        """An ISO 8601 time with offset ("2026-11-30T10:12:38-05:00"); None when absent."""
        value = self.data.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            self.v.add(self.where(key), "must be an ISO 8601 time")
            return None
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            self.v.add(self.where(key), f"must be an ISO 8601 time, got {shown(value)}")
            return None
        if moment.tzinfo is None:
            self.v.add(self.where(key), "must carry a UTC offset")
            return None
        stamp = Timestamp()
        stamp.FromDatetime(moment)
        return stamp

    def child(self, key: str) -> Payload | None:
        """The object at ``key``; None when absent or null."""
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            self.v.add(self.where(key), "must be an object")
            return None
        return Payload(value, self.v, self.where(key))

    def children(self, key: str) -> list[Payload]:
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.v.add(self.where(key), "must be a list")
            return []
        found = []
        for index, item in enumerate(value):
            if not isinstance(item, dict):
                self.v.add(f"{self.where(key)}[{index}]", "must be an object")
                continue
            found.append(Payload(item, self.v, f"{self.where(key)}[{index}]"))
        return found
