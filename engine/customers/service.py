"""PreferencesService: customers' preferences and consent, opt-outs and erasure.

Consent changes made through the API keep, with each event, the id of the API key
that made them (the auth interceptor names it: ``engine.platform.rpc.caller``),
beside the ``source`` the caller gave; the sources the service writes itself for
the customer's own actions may not be given (``parsing.source``).

Every change is saved first and then told to the customer's running journeys
(:class:`engine.customers.journey_link.JourneyNotifier`). If Temporal
cannot be reached for that second part the call answers UNAVAILABLE: the change is
saved (the send activity checks consent at the moment of sending anyway), and
repeating the call is safe.
"""

from __future__ import annotations

from typing import TypeVar

import grpc
from aftercare.v1 import journey_pb2 as journey_pb
from aftercare.v1 import preferences_pb2 as pb
from aftercare.v1 import preferences_pb2_grpc as pb_grpc

from engine.customers import parsing
from engine.customers.consent import (
    ConsentEvent,
    CustomerErased,
    current_consent,
)
from engine.customers.erasure import CustomerEraser
from engine.customers.journey_link import JourneyNotifier
from engine.customers.preferences import PreferenceSnapshot, PreferenceStore, PreferenceUpdate
from engine.journeys.replies import timestamp
from engine.platform.logging import get_logger
from engine.platform.rpc.answers import Refusal, answered
from engine.platform.rpc.caller import calling_api_key
from workflows.plans.model import ALWAYS_ALLOWED_CATEGORIES

log = get_logger(__name__)

Reply = TypeVar("Reply")

_CHANNEL_NUMBERS: dict[str, journey_pb.Channel.ValueType] = {
    name: journey_pb.Channel.ValueType(number) for number, name in parsing.CHANNELS.items()
}
_CATEGORY_NUMBERS: dict[str, pb.MessageCategory.ValueType] = {
    name: pb.MessageCategory.ValueType(number) for number, name in parsing.CATEGORIES.items()
}


def _refusal(error: Exception) -> Refusal | None:
    if isinstance(error, CustomerErased):
        return grpc.StatusCode.FAILED_PRECONDITION, str(error)
    return None


_answered = answered(
    refuse=_refusal,
    unavailable=lambda err: (
        f"saved, but the customer's journeys could not be told ({err}); retrying is safe"
    ),
)


class PreferencesServicer(pb_grpc.PreferencesServiceServicer):
    def __init__(
        self, store: PreferenceStore, journeys: JourneyNotifier, eraser: CustomerEraser
    ) -> None:
        self._store = store
        self._journeys = journeys
        self._eraser = eraser

    @_answered
    async def GetPreferences(
        self, request: pb.GetPreferencesRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetPreferencesResponse:
        snapshot = await self._store.read(parsing.customer_id_request(request.customer_id))
        history = (
            [consent_record(event) for event in snapshot.consent_events]
            if request.include_history
            else []
        )
        return pb.GetPreferencesResponse(preferences=preferences(snapshot), history=history)

    @_answered
    async def UpdatePreferences(
        self, request: pb.UpdatePreferencesRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpdatePreferencesResponse:
        update = parsing.update_request(request)
        await self._store.update(
            update.customer_id,
            update.changes,
            update.consents,
            source=update.source,
            api_key_id=calling_api_key(),
        )
        notified = await self._journeys.notify_preferences_changed(update.customer_id)
        log.info("preferences updated", consent_changes=len(update.consents), journeys=notified)
        snapshot = await self._store.read(update.customer_id)
        return pb.UpdatePreferencesResponse(
            preferences=preferences(snapshot), journeys_notified=notified
        )

    @_answered
    async def Unsubscribe(
        self, request: pb.UnsubscribeRequest, context: grpc.aio.ServicerContext
    ) -> pb.UnsubscribeResponse:
        unsubscription = parsing.unsubscribe_request(request)
        customer_id = unsubscription.customer_id
        await self._store.update(
            customer_id,
            PreferenceUpdate(),
            [unsubscription.decision],
            source=unsubscription.source,
            api_key_id=calling_api_key(),
        )
        notified = await self._journeys.notify_preferences_changed(customer_id)
        log.info(
            "customer unsubscribed",
            category=unsubscription.decision.category or "all",
            channel=unsubscription.decision.channel or "all",
            journeys=notified,
        )
        snapshot = await self._store.read(customer_id)
        return pb.UnsubscribeResponse(preferences=preferences(snapshot), journeys_notified=notified)

    @_answered
    async def EraseCustomer(
        self, request: pb.EraseCustomerRequest, context: grpc.aio.ServicerContext
    ) -> pb.EraseCustomerResponse:
        erasure_id, report = await self._eraser.erase(parsing.erasure_request(request.customer_id))
        answer = pb.EraseCustomerResponse(
            journeys_cancelled=report.journeys_terminated,
            preference_rows_deleted=report.preference_rows_deleted,
            consent_rows_deleted=report.consent_rows_deleted,
            ledger_rows_anonymised=report.ledger_rows_anonymised,
            data_key_destroyed=report.data_key_destroyed,
            already_erased=report.already_erased,
            finished=report.finished,
            erasure_id=erasure_id,
            stage=report.stage,
        )
        if report.erased_at is not None:
            answer.erased_at.CopyFrom(timestamp(report.erased_at))
        return answer


def preferences(snapshot: PreferenceSnapshot) -> pb.Preferences:
    stored = snapshot.preferences
    deciding = current_consent(snapshot.consent_events)
    consents = []
    for channel, channel_number in _CHANNEL_NUMBERS.items():
        for category, category_number in _CATEGORY_NUMBERS.items():
            consent = pb.Consent(channel=channel_number, category=category_number)
            if category in ALWAYS_ALLOWED_CATEGORIES:
                consent.granted, consent.source = True, "not_required"
            elif (event := deciding.get((channel, category))) is None:
                consent.granted, consent.source = True, "default"
            else:
                consent.granted, consent.source = event.granted, event.source
                consent.recorded_at.CopyFrom(timestamp(event.recorded_at))
            consents.append(consent)
    message = pb.Preferences(
        customer_id=stored.customer_id,
        consents=consents,
        locale=stored.locale or "",
        timezone=stored.timezone or "",
        preferred_channel=_CHANNEL_NUMBERS.get(
            stored.preferred_channel or "", journey_pb.CHANNEL_UNSPECIFIED
        ),
    )
    if stored.quiet_hours is not None:
        message.quiet_hours.CopyFrom(
            pb.QuietHours(start=stored.quiet_hours.start, end=stored.quiet_hours.end)
        )
    if stored.updated_at is not None:
        message.updated_at.CopyFrom(timestamp(stored.updated_at))
    return message


def consent_record(event: ConsentEvent) -> pb.ConsentRecord:
    return pb.ConsentRecord(
        channel=_CHANNEL_NUMBERS.get(event.channel or "", journey_pb.CHANNEL_UNSPECIFIED),
        category=_CATEGORY_NUMBERS.get(event.category or "", pb.MESSAGE_CATEGORY_UNSPECIFIED),
        granted=event.granted,
        source=event.source,
        recorded_at=timestamp(event.recorded_at),
    )
