"""Where customers meet their journeys: what a starting journey learns of its
customer, and telling running journeys when the customer's choices change.

Consent is checked at the moment of sending anyway, so a journey never sends what
the customer refused; telling running journeys at once also lets them skip such
steps in their plan, apply a new channel, quiet hours or time zone, and show it.
"""

from __future__ import annotations

from typing import Protocol

from engine.customers.consent import current_consent
from engine.customers.preferences import PreferenceSnapshot, PreferenceStore
from engine.journeys.errors import CustomerWasErased
from workflows.overrides import CustomerOverrides
from workflows.plans.model import Category, TimeWindow
from workflows.vocabulary import Channel


def overrides_from(snapshot: PreferenceSnapshot) -> CustomerOverrides:
    """What a journey needs of the stored preferences and consent: refused
    categories per channel, quiet hours, preferred channel, zone, locale, and
    whether push has a device to reach."""
    refused: dict[Channel, list[Category]] = {}
    for (channel, category), event in current_consent(snapshot.consent_events).items():
        if event is not None and not event.granted:
            refused.setdefault(Channel(channel), []).append(Category(category))
    preferences = snapshot.preferences
    quiet = preferences.quiet_hours
    return CustomerOverrides(
        refused=refused,
        quiet_hours=TimeWindow(start=quiet.start, end=quiet.end) if quiet else None,
        preferred_channel=(
            Channel(preferences.preferred_channel) if preferences.preferred_channel else None
        ),
        timezone=preferences.timezone or "",
        locale=preferences.locale or "",
        has_push_device=snapshot.has_push_device,
        revision=preferences.revision,
    )


class StoredChoices:
    """``engine.journeys.directory.CustomerChoices`` from the preference store."""

    def __init__(self, store: PreferenceStore) -> None:
        self._store = store

    async def at_start(self, customer_id: str) -> CustomerOverrides | None:
        # One read for the erasure mark and the choices. An erased customer is
        # refused before the journey's owner is registered: registering would make
        # them a new data key, and the journey would hold their data again.
        snapshot = await self._store.read_unless_erased(customer_id)
        if snapshot is None:
            raise CustomerWasErased("order.customer.id")
        if snapshot.preferences.updated_at is None and not snapshot.consent_events:
            # Nothing chosen: the input stays small, yet says whether push can
            # reach anyone, so a push step costs no activity for a customer without.
            return CustomerOverrides(
                has_push_device=snapshot.has_push_device,
                revision=snapshot.preferences.revision,
            )
        return overrides_from(snapshot)


class PreferenceSignals(Protocol):
    """``JourneyDirectory.signal_preferences``: tell a customer's running journeys."""

    async def signal_preferences(self, customer_id: str, overrides: CustomerOverrides) -> int: ...


class JourneyNotifier:
    """Tells a customer's running journeys their current choices; call it after
    every change to preferences or consent, and when a customer's first push device
    is registered or their last one goes."""

    def __init__(self, store: PreferenceStore, journeys: PreferenceSignals) -> None:
        self._store = store
        self._journeys = journeys

    async def notify_preferences_changed(self, customer_id: str) -> int:
        """How many journeys were told. A fresh revision, read with the data: a
        journey keeps the newest it receives."""
        overrides = overrides_from(await self._store.snapshot(customer_id))
        return await self._journeys.signal_preferences(customer_id, overrides)
