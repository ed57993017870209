"""The method -> scope map covers every RPC of every aftercare.v1 service, and
nothing unmapped of ours is callable."""

from __future__ import annotations

import pytest

from engine.access.scopes import ALL_SCOPES, METHOD_SCOPES, Scope, parse_scopes, requirement_for
from tests.support.api_methods import api_methods

METHODS = api_methods()


def test_the_protos_have_the_services_we_know_of() -> None:
    # Guards the discovery itself: an empty list would make the tests below vacuous.
    services = {method.service for method in METHODS}
    assert {
        "aftercare.v1.JourneyService",
        "aftercare.v1.PreferencesService",
        "aftercare.v1.OperationsService",
    } <= services
    assert len(METHODS) >= 15


@pytest.mark.parametrize("method", METHODS, ids=str)
def test_every_method_has_a_scope_entry(method: object) -> None:
    path = str(method)
    assert path in METHOD_SCOPES, f"{path} has no entry in engine/access/scopes.py METHOD_SCOPES"
    requirement = requirement_for(path)
    assert requirement.known
    assert not requirement.open
    assert requirement.scopes, f"{path} needs at least one scope"
    assert requirement.scopes <= ALL_SCOPES


def test_no_entry_names_a_method_the_protos_do_not_have() -> None:
    assert set(METHOD_SCOPES) <= {method.path for method in METHODS}


@pytest.mark.parametrize(
    ("method", "scopes"),
    [
        ("/aftercare.v1.JourneyService/StartJourney", {Scope.EVENTS_WRITE}),
        ("/aftercare.v1.JourneyService/RecordEvent", {Scope.EVENTS_WRITE}),
        ("/aftercare.v1.JourneyService/GetJourney", {Scope.JOURNEYS_READ}),
        ("/aftercare.v1.JourneyService/ListJourneys", {Scope.JOURNEYS_READ}),
        ("/aftercare.v1.JourneyService/CancelJourney", {Scope.JOURNEYS_ADMIN}),
        ("/aftercare.v1.PreferencesService/GetPreferences", {Scope.PREFERENCES_WRITE}),
        ("/aftercare.v1.PreferencesService/UpdatePreferences", {Scope.PREFERENCES_WRITE}),
        ("/aftercare.v1.PreferencesService/Unsubscribe", {Scope.PREFERENCES_WRITE}),
        (
            "/aftercare.v1.PreferencesService/EraseCustomer",
            {Scope.PREFERENCES_WRITE, Scope.JOURNEYS_ADMIN},
        ),
        *(
            (f"/aftercare.v1.OperationsService/{name}", {Scope.JOURNEYS_ADMIN})
            for name in (
                "PauseSending",
                "ResumeSending",
                "ListPauses",
                "CountJourneys",
                "StartBulkOperation",
                "GetBulkOperation",
            )
        ),
    ],
)
def test_the_scopes_each_method_needs(method: str, scopes: set[Scope]) -> None:
    assert requirement_for(method).scopes == scopes


@pytest.mark.parametrize(
    "method",
    [
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    ],
)
def test_health_and_reflection_stay_open(method: str) -> None:
    assert requirement_for(method).open


@pytest.mark.parametrize(
    "method",
    [
        "/aftercare.v1.JourneyService/DeleteEverything",
        "/aftercare.v2.JourneyService/StartJourney",
        "/grpc.health.v1.HealthAdmin/Check",
        "/other.Service/Method",
        "",
    ],
)
def test_anything_else_is_refused(method: str) -> None:
    requirement = requirement_for(method)
    assert not requirement.open
    assert not requirement.known


def test_parse_scopes_names_the_unknown_ones() -> None:
    assert parse_scopes(["events:write"]) == {Scope.EVENTS_WRITE}
    with pytest.raises(ValueError, match="'events:read'"):
        parse_scopes(["events:write", "events:read"])
