"""Telling a customer's running journeys whether push can reach them.

A journey knows, without asking, whether its customer has a push device
(``CustomerOverrides.has_push_device``): without one a push step goes straight to its
next channel, no activity spent. So whenever a customer's devices go from none to
some or from some to none, their journeys hear it the way they hear of a preference
change (``JourneyNotifier``: a fresh revision, the newest one kept).

The moments are judged by what is left after the change (one device after a
registration, none after a removal), not by what the change did, so repeating a call
whose notification failed (Temporal out of reach) notifies again.
"""

from __future__ import annotations

from sqlalchemy.exc import SQLAlchemyError
from temporalio.service import RPCError

from engine.customers.journey_link import JourneyNotifier
from engine.customers.preferences import PreferenceStore
from engine.messaging.push_devices import PushDevices
from engine.platform.logging import get_logger

log = get_logger(__name__)


class DeviceChanges:
    def __init__(
        self, devices: PushDevices, notifier: JourneyNotifier, store: PreferenceStore
    ) -> None:
        self._devices = devices
        self._notifier = notifier
        self._store = store

    async def registered(self, customer_id: str, previous_owner: str | None) -> int:
        """After a registration for ``customer_id`` of a device ``previous_owner`` had
        (None: nobody); how many journeys were told."""
        told = 0
        if len(await self._devices.of_customer(customer_id)) == 1:
            told += await self._notifier.notify_preferences_changed(customer_id)
        if previous_owner is not None and previous_owner != customer_id:
            told += await self.removed(previous_owner)
        return told

    async def removed(self, customer_id: str) -> int:
        """After one of the customer's devices went; how many journeys were told."""
        if await self._devices.any_of_customer(customer_id):
            return 0
        # Erasure took their devices and ended their journeys; telling would write a
        # preferences row (the revision) for a customer who must have none.
        if await self._store.is_erased(customer_id):
            return 0
        return await self._notifier.notify_preferences_changed(customer_id)

    async def forgotten(self, customer_id: str) -> None:
        """After FCM reported a device's token unregistered (or a push service a
        subscription gone), during a send: the send goes on whatever happens here (its
        step falls back when no device is left), so a failure to tell is logged, not
        raised."""
        try:
            told = await self.removed(customer_id)
        except (RPCError, SQLAlchemyError, OSError) as err:
            log.warning("journeys not told of a forgotten push device", error=str(err))
            return
        if told:
            log.info("journeys told: no push device left", journeys=told)
