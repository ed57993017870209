"""Registering the journeys' search attributes on a namespace that lacks some.

``temporal server start-dev --search-attribute`` registers them only when it creates
its database: a dev stack kept from an earlier release (``.aftercare/``) would lack
an attribute added since, and a journey writing it would fail its workflow task
until it exists. Production namespaces register them once, by hand or with the
compose file's ``temporal-admin-tools`` (docs/operations.md).
"""

from __future__ import annotations

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client

from workflows import search_attributes as sa


async def register_missing_search_attributes(client: Client) -> list[str]:
    """Add every attribute journeys write that the client's namespace lacks; the
    names added (none when all are there)."""
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace)
    )
    missing = {
        # The SDK numbers the kinds as the API does.
        key.name: IndexedValueType.ValueType(key.indexed_value_type.value)
        for key in sa.ALL
        if key.name not in listed.custom_attributes
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=client.namespace, search_attributes=missing)
        )
    return sorted(missing)
