"""A JourneyFilter becomes a visibility query from checked values only, and every
bad field of an OperationsService request is named (no server needed here; the
queries themselves run against the dev server in test_bulk_operations)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from aftercare.v1 import journey_pb2
from aftercare.v1 import operations_pb2 as pb
from google.protobuf.timestamp_pb2 import Timestamp

from engine.journeys.operations import parsing
from engine.journeys.operations.bulk import BulkAction, action_of
from engine.journeys.operations.filters import JourneyFilter, visibility_query
from engine.journeys.operations.parsing import PauseVocabulary
from engine.messaging.pauses import PauseScope, ScopeKind
from engine.platform.rpc.violations import InvalidRequest
from workflows.vocabulary import Stage

RUNNING = "WorkflowType = \"OrderJourney\" AND ExecutionStatus = 'Running'"
VOCABULARY = PauseVocabulary(
    plans=frozenset({"default", "consumables"}),
    steps=frozenset({"cross_sell", "order_confirmation", "replenishment"}),
    templates=frozenset({"cross_sell", "order_confirmation"}),
)


def stamp(moment: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(moment)
    return value


def violations(error: pytest.ExceptionInfo[InvalidRequest]) -> dict[str, str]:
    return {v.field: v.description for v in error.value.violations}


def test_an_empty_filter_selects_every_running_journey() -> None:
    assert visibility_query(JourneyFilter()) == RUNNING


def test_every_criterion_becomes_one_clause() -> None:
    query = visibility_query(
        JourneyFilter(
            plan="default",
            stage=Stage.DELIVERED,
            customer_id="cus_42",
            started_after=datetime(2026, 11, 1, tzinfo=UTC),
            started_before=datetime(2026, 12, 1, 9, 30, tzinfo=UTC),
            paused=True,
        )
    )
    assert query == (
        f"{RUNNING}"
        ' AND JourneyPlan STARTS_WITH "default@v"'
        ' AND JourneyStage = "delivered"'
        ' AND CustomerId = "cus_42"'
        ' AND StartTime > "2026-11-01T00:00:00Z"'
        ' AND StartTime < "2026-12-01T09:30:00Z"'
        " AND JourneyPaused = true"
    )


def test_a_pinned_plan_version_matches_exactly() -> None:
    assert visibility_query(JourneyFilter(plan="default@v2")).endswith(
        ' AND JourneyPlan = "default@v2"'
    )


def test_not_paused_includes_journeys_that_never_paused() -> None:
    assert visibility_query(JourneyFilter(paused=False)).endswith(
        " AND (JourneyPaused = false OR JourneyPaused IS NULL)"
    )


def test_instants_are_written_in_utc() -> None:
    from zoneinfo import ZoneInfo

    berlin = datetime(2026, 12, 1, 10, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    assert visibility_query(JourneyFilter(started_after=berlin)).endswith(
        'StartTime > "2026-12-01T09:00:00Z"'
    )


def test_a_filter_from_the_wire_keeps_only_what_was_set() -> None:
    parsed = parsing.count_request(
        pb.CountJourneysRequest(
            filter=pb.JourneyFilter(
                plan="default@v1",
                stage=journey_pb2.JOURNEY_STAGE_SHIPPED,
                started_before=stamp(datetime(2026, 12, 1, tzinfo=UTC)),
                paused=False,
            )
        )
    )
    assert parsed == JourneyFilter(
        plan="default@v1",
        stage=Stage.SHIPPED,
        started_before=datetime(2026, 12, 1, tzinfo=UTC),
        paused=False,
    )
    assert parsing.count_request(pb.CountJourneysRequest()) == JourneyFilter()


@pytest.mark.parametrize(
    ("journeys", "field"),
    [
        (pb.JourneyFilter(plan='default" OR WorkflowType != "x'), "filter.plan"),
        (pb.JourneyFilter(plan="Default"), "filter.plan"),
        (pb.JourneyFilter(plan="default@v0"), "filter.plan"),
        (pb.JourneyFilter(plan="default@1"), "filter.plan"),
        (pb.JourneyFilter(stage=journey_pb2.JourneyStage.ValueType(99)), "filter.stage"),
        (pb.JourneyFilter(customer_id="jane@example.com"), "filter.customer_id"),
        (pb.JourneyFilter(customer_id='c" OR "1"="1'), "filter.customer_id"),
        (pb.JourneyFilter(started_after=Timestamp(seconds=-1)), "filter.started_after"),
        (pb.JourneyFilter(started_before=Timestamp(nanos=-5)), "filter.started_before"),
        (
            pb.JourneyFilter(
                started_after=stamp(datetime(2026, 12, 2, tzinfo=UTC)),
                started_before=stamp(datetime(2026, 12, 1, tzinfo=UTC)),
            ),
            "filter.started_before",
        ),
    ],
)
def test_a_bad_filter_field_is_named(journeys: pb.JourneyFilter, field: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        parsing.count_request(pb.CountJourneysRequest(filter=journeys))
    assert field in violations(raised)


def test_a_customer_id_that_is_personal_data_is_not_echoed() -> None:
    with pytest.raises(InvalidRequest) as raised:
        parsing.count_request(
            pb.CountJourneysRequest(filter=pb.JourneyFilter(customer_id="jane@example.com"))
        )
    assert "jane" not in str(raised.value)


def test_a_bulk_operation_needs_a_filter_an_action_and_a_reason() -> None:
    with pytest.raises(InvalidRequest) as raised:
        parsing.bulk_request(pb.StartBulkOperationRequest(max_operations_per_second=5000))
    assert set(violations(raised)) == {"filter", "action", "reason", "max_operations_per_second"}


def test_a_dry_run_needs_no_reason() -> None:
    wanted = parsing.bulk_request(
        pb.StartBulkOperationRequest(
            filter=pb.JourneyFilter(plan="default"), action=pb.BULK_ACTION_CANCEL, dry_run=True
        )
    )
    assert wanted.dry_run
    assert wanted.action is BulkAction.CANCEL
    assert wanted.reason == ""
    assert wanted.max_operations_per_second is None


def test_a_bulk_filter_of_only_unset_fields_selects_nothing_and_is_refused() -> None:
    with pytest.raises(InvalidRequest) as raised:
        parsing.bulk_request(
            pb.StartBulkOperationRequest(
                filter=pb.JourneyFilter(), action=pb.BULK_ACTION_PAUSE, reason="why"
            )
        )
    assert set(violations(raised)) == {"filter"}


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        (pb.PAUSE_SCOPE_KIND_STEP, "cross_sell"),
        (pb.PAUSE_SCOPE_KIND_STEP, "replenishment"),
        (pb.PAUSE_SCOPE_KIND_TEMPLATE, "order_confirmation"),
        (pb.PAUSE_SCOPE_KIND_CATEGORY, "marketing"),
        (pb.PAUSE_SCOPE_KIND_CATEGORY, "transactional"),
        (pb.PAUSE_SCOPE_KIND_PLAN, "consumables"),
    ],
)
def test_a_pause_may_name_what_the_deployment_has(
    kind: pb.PauseScopeKind.ValueType, value: str
) -> None:
    wanted = parsing.pause_request(
        pb.PauseSendingRequest(scope=pb.PauseScope(kind=kind, value=value), reason="bad price"),
        VOCABULARY,
    )
    assert wanted.scope == PauseScope(parsing.SCOPE_KINDS[kind], value)
    assert wanted.reason == "bad price"


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.PauseSendingRequest(reason="x"), "scope"),
        (pb.PauseSendingRequest(scope=pb.PauseScope(value="cross_sell"), reason="x"), "scope.kind"),
        (
            pb.PauseSendingRequest(scope=pb.PauseScope(kind=pb.PAUSE_SCOPE_KIND_STEP), reason="x"),
            "scope.value",
        ),
        (
            pb.PauseSendingRequest(
                scope=pb.PauseScope(kind=pb.PAUSE_SCOPE_KIND_STEP, value="crossell"), reason="x"
            ),
            "scope.value",
        ),
        (
            pb.PauseSendingRequest(
                scope=pb.PauseScope(kind=pb.PAUSE_SCOPE_KIND_CATEGORY, value="promo"), reason="x"
            ),
            "scope.value",
        ),
        (
            pb.PauseSendingRequest(
                scope=pb.PauseScope(kind=pb.PAUSE_SCOPE_KIND_PLAN, value="nope"), reason="x"
            ),
            "scope.value",
        ),
        (
            pb.PauseSendingRequest(
                scope=pb.PauseScope(kind=pb.PAUSE_SCOPE_KIND_TEMPLATE, value="Cross Sell"),
                reason="x",
            ),
            "scope.value",
        ),
        (
            pb.PauseSendingRequest(
                scope=pb.PauseScope(kind=pb.PAUSE_SCOPE_KIND_STEP, value="cross_sell")
            ),
            "reason",
        ),
        (
            pb.PauseSendingRequest(
                scope=pb.PauseScope(kind=pb.PAUSE_SCOPE_KIND_STEP, value="cross_sell"),
                reason="a\u202ebc",
            ),
            "reason",
        ),
    ],
)
def test_a_bad_pause_field_is_named(request_: pb.PauseSendingRequest, field: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        parsing.pause_request(request_, VOCABULARY)
    assert set(violations(raised)) == {field}


def test_without_a_vocabulary_any_well_formed_name_is_taken() -> None:
    wanted = parsing.pause_request(
        pb.PauseSendingRequest(
            scope=pb.PauseScope(kind=pb.PAUSE_SCOPE_KIND_STEP, value="some_step"), reason="x"
        ),
        None,
    )
    assert wanted.scope == PauseScope(ScopeKind.STEP, "some_step")


@pytest.mark.parametrize("value", ["", "a b", "x" * 129, "../../etc", "-leading"])
def test_ids_are_checked(value: str) -> None:
    for check, field in ((parsing.pause_id, "pause_id"), (parsing.job_id, "job_id")):
        with pytest.raises(InvalidRequest) as raised:
            check(value)
        assert set(violations(raised)) == {field}


def test_the_job_id_tells_the_action() -> None:
    assert action_of("aftercare-pause_all-0123456789abcdef") is BulkAction.PAUSE_ALL
    assert action_of("aftercare-cancel-0123456789abcdef") is BulkAction.CANCEL
    assert action_of("aftercare-sending_resumed-0123456789abcdef") is None
    assert action_of("someone-elses-job") is None
