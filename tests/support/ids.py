"""Unique ids per test, so tests sharing one Temporal server never collide."""

from __future__ import annotations

import uuid


def new_order_id(prefix: str = "T") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"
