"""Which API key scopes each gRPC method needs: the one place that says so.

A method of ours (``aftercare.*``) missing from :data:`METHOD_SCOPES` is refused
even with an all-scopes key (fail closed): adding an RPC to a proto without
deciding who may call it must not open it to everybody. The test suite reads
every method of every ``aftercare.v1`` service from the proto descriptors and
fails when one has no entry here.

Health checks and server reflection stay open: load balancers and tools such as
grpcurl use them without a key, and they reveal nothing about customers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class Scope(StrEnum):
    EVENTS_WRITE = "events:write"
    JOURNEYS_READ = "journeys:read"
    JOURNEYS_ADMIN = "journeys:admin"
    PREFERENCES_WRITE = "preferences:write"
    # The plan report (numbers only, no customer data), gRPC and the HTTP page.
    REPORTS_READ = "reports:read"
    # Who hears of journey events, and with whose personal data: admin of its own.
    SUBSCRIPTIONS_ADMIN = "subscriptions:admin"


ALL_SCOPES: frozenset[Scope] = frozenset(Scope)

_JOURNEYS = "/aftercare.v1.JourneyService/"
_PREFERENCES = "/aftercare.v1.PreferencesService/"
_OPERATIONS = "/aftercare.v1.OperationsService/"
_REPORTS = "/aftercare.v1.ReportsService/"
_DEVICES = "/aftercare.v1.DevicesService/"
_SUBSCRIPTIONS = "/aftercare.v1.SubscriptionsService/"

#: gRPC method path -> every scope the caller's key must hold.
METHOD_SCOPES: Mapping[str, frozenset[Scope]] = {
    _JOURNEYS + "StartJourney": frozenset({Scope.EVENTS_WRITE}),
    _JOURNEYS + "RecordEvent": frozenset({Scope.EVENTS_WRITE}),
    _JOURNEYS + "GetJourney": frozenset({Scope.JOURNEYS_READ}),
    _JOURNEYS + "ListJourneys": frozenset({Scope.JOURNEYS_READ}),
    _JOURNEYS + "CancelJourney": frozenset({Scope.JOURNEYS_ADMIN}),
    _PREFERENCES + "GetPreferences": frozenset({Scope.PREFERENCES_WRITE}),
    _PREFERENCES + "UpdatePreferences": frozenset({Scope.PREFERENCES_WRITE}),
    _PREFERENCES + "Unsubscribe": frozenset({Scope.PREFERENCES_WRITE}),
    # Erasure cancels journeys as well as deleting preferences.
    _PREFERENCES + "EraseCustomer": frozenset({Scope.PREFERENCES_WRITE, Scope.JOURNEYS_ADMIN}),
    # Pauses and bulk operations act on every journey, so even reading them is admin.
    _OPERATIONS + "PauseSending": frozenset({Scope.JOURNEYS_ADMIN}),
    _OPERATIONS + "ResumeSending": frozenset({Scope.JOURNEYS_ADMIN}),
    _OPERATIONS + "ListPauses": frozenset({Scope.JOURNEYS_ADMIN}),
    _OPERATIONS + "CountJourneys": frozenset({Scope.JOURNEYS_ADMIN}),
    _OPERATIONS + "StartBulkOperation": frozenset({Scope.JOURNEYS_ADMIN}),
    _OPERATIONS + "GetBulkOperation": frozenset({Scope.JOURNEYS_ADMIN}),
    _REPORTS + "GetPlanReport": frozenset({Scope.REPORTS_READ}),
    # Changes what every journey of the experiment sends: admin, like a pause.
    _REPORTS + "StopExperiment": frozenset({Scope.JOURNEYS_ADMIN}),
    # A customer's push devices are theirs to choose, like their other channels.
    _DEVICES + "RegisterDevice": frozenset({Scope.PREFERENCES_WRITE}),
    _DEVICES + "RemoveDevice": frozenset({Scope.PREFERENCES_WRITE}),
    _DEVICES + "ListDevices": frozenset({Scope.PREFERENCES_WRITE}),
    _SUBSCRIPTIONS + "CreateSubscription": frozenset({Scope.SUBSCRIPTIONS_ADMIN}),
    _SUBSCRIPTIONS + "ListSubscriptions": frozenset({Scope.SUBSCRIPTIONS_ADMIN}),
    _SUBSCRIPTIONS + "RemoveSubscription": frozenset({Scope.SUBSCRIPTIONS_ADMIN}),
}

#: Services anyone may call, without a key.
OPEN_SERVICES: frozenset[str] = frozenset(
    {
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    }
)


@dataclass(frozen=True)
class Requirement:
    """What a call to one method needs: nothing (``open``), or a key holding
    ``scopes``; a method nobody mapped has ``known`` False and is refused."""

    open: bool
    scopes: frozenset[Scope]
    known: bool


def service_of(method: str) -> str:
    """``/pkg.Service/Method`` -> ``pkg.Service``."""
    return method.lstrip("/").partition("/")[0]


def requirement_for(method: str) -> Requirement:
    if service_of(method) in OPEN_SERVICES:
        return Requirement(open=True, scopes=frozenset(), known=True)
    scopes = METHOD_SCOPES.get(method)
    if scopes is None:
        return Requirement(open=False, scopes=frozenset(), known=False)
    return Requirement(open=False, scopes=scopes, known=True)


def parse_scopes(values: list[str] | tuple[str, ...]) -> frozenset[Scope]:
    """Scopes from their names; ValueError naming the unknown one(s)."""
    known = {scope.value for scope in Scope}
    unknown = sorted({value for value in values if value not in known})
    if unknown:
        raise ValueError(
            f"unknown scope {', '.join(repr(u) for u in unknown)};"
            f" one of {', '.join(sorted(known))}"
        )
    return frozenset(Scope(value) for value in values)
