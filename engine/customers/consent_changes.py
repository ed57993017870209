"""The seam through which customer pages tell journeys that consent changed.

Consent is checked at the moment of sending anyway, so a journey never sends
what the customer refused; telling running journeys at once also lets them skip
such steps in their plan and show it in their state. The wiring lives outside
the HTTP app (``JourneyDirectory.notify_preferences_changed``), passed in as a
plain callback so the pages need no Temporal client.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from engine.platform.logging import get_logger

log = get_logger(__name__)

ConsentChanged = Callable[[str], Awaitable[object]]
"""Called with a customer id after their consent changed; its result is ignored."""


async def tell_journeys(callback: ConsentChanged | None, customer_id: str, source: str) -> None:
    """Run the callback; a failure is logged, never shown to the customer: the
    change is recorded and enforced when sending whether or not journeys heard."""
    if callback is None:
        return
    try:
        await callback(customer_id)
    except Exception as err:  # any failure of the notification, by design
        log.warning("journeys not told about a consent change", source=source, error=str(err))
