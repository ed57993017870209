"""Custom search attributes every journey carries, for the Temporal UI and ListJourneys.

None of them holds personal data: the order id and the shop's internal customer id
are opaque identifiers.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

ORDER_ID = SearchAttributeKey.for_keyword("OrderId")
CUSTOMER_ID = SearchAttributeKey.for_keyword("CustomerId")
JOURNEY_STAGE = SearchAttributeKey.for_keyword("JourneyStage")
JOURNEY_PLAN = SearchAttributeKey.for_keyword("JourneyPlan")

ALL = (ORDER_ID, CUSTOMER_ID, JOURNEY_STAGE, JOURNEY_PLAN)


def dev_server_flags() -> list[str]:
    """``temporal server start-dev`` arguments registering every attribute."""
    flags: list[str] = []
    for key in ALL:
        flags += ["--search-attribute", f"{key.name}=Keyword"]
    return flags
