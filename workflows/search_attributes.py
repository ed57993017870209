"""Custom search attributes every journey carries, for the Temporal UI and ListJourneys.

None of them holds personal data: the order id and the shop's internal customer id
are opaque identifiers.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeIndexedValueType, SearchAttributeKey

ORDER_ID = SearchAttributeKey.for_keyword("OrderId")
CUSTOMER_ID = SearchAttributeKey.for_keyword("CustomerId")
JOURNEY_STAGE = SearchAttributeKey.for_keyword("JourneyStage")
JOURNEY_PLAN = SearchAttributeKey.for_keyword("JourneyPlan")
# True while a pause holds one of the journey's sends or the journey has its own
# pause; set only on journeys that were ever paused (absent on the others).
JOURNEY_PAUSED = SearchAttributeKey.for_bool("JourneyPaused")

ALL: tuple[SearchAttributeKey[str] | SearchAttributeKey[bool], ...] = (
    ORDER_ID,
    CUSTOMER_ID,
    JOURNEY_STAGE,
    JOURNEY_PLAN,
    JOURNEY_PAUSED,
)

# How ``temporal operator search-attribute create --type`` (and start-dev's
# ``--search-attribute Name=Type``) spell each kind.
CLI_TYPES = {
    SearchAttributeIndexedValueType.KEYWORD: "Keyword",
    SearchAttributeIndexedValueType.BOOL: "Bool",
}


def dev_server_flags() -> list[str]:
    """``temporal server start-dev`` arguments registering every attribute."""
    flags: list[str] = []
    for key in ALL:
        flags += ["--search-attribute", f"{key.name}={CLI_TYPES[key.indexed_value_type]}"]
    return flags
