"""OperationsService over real gRPC: pauses made, listed and lifted with the caller's
key recorded; every bad field named (INVALID_ARGUMENT), unknown ids NOT_FOUND, and
nothing for a key without journeys:admin (PERMISSION_DENIED)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aftercare.v1 import journey_pb2
from aftercare.v1 import operations_pb2 as pb
from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.client import Client

from clients import (
    AftercareClient,
    BulkOperationNotFoundError,
    InvalidRequestError,
    PauseNotFoundError,
    PermissionDeniedError,
)
from engine.devstack.mail_sink import MailSink
from tests.support.operations import OperationsStack, operations_stack

STEP = pb.PAUSE_SCOPE_KIND_STEP


@pytest.fixture(scope="module")
async def ops(
    temporal_client: Client, mail_sink: MailSink, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[OperationsStack]:
    # The shipped plans: a pause may name their steps and templates.
    async with operations_stack(
        temporal_client, tmp_path_factory.mktemp("ops-api"), mail_sink
    ) as stack:
        yield stack


async def test_a_pause_is_listed_until_resumed_and_records_who(ops: OperationsStack) -> None:
    pause = await ops.client.pause_sending(STEP, "cross_sell", reason="wrong price in the mail")
    assert pause.pause_id
    assert pause.scope == pb.PauseScope(kind=STEP, value="cross_sell")
    # A step is named explicitly: it is held whatever its category.
    assert pause.include_transactional
    assert pause.reason == "wrong price in the mail"
    assert pause.created_by == ops.api_key_id
    assert not pause.HasField("resumed_at")

    again = await ops.client.pause_sending(STEP, "cross_sell", reason="someone else, same thing")
    assert again.pause_id == pause.pause_id  # not made twice
    listed = await ops.client.list_pauses()
    assert [p.pause_id for p in listed.pauses].count(pause.pause_id) == 1

    resumed = await ops.client.resume_sending(pause.pause_id)
    assert resumed.pause.pause_id == pause.pause_id
    assert resumed.pause.HasField("resumed_at")
    assert resumed.pause.resumed_by == ops.api_key_id
    # The journeys holding a message are told by a bulk signal.
    assert resumed.job_id.startswith("aftercare-sending_resumed-")
    assert pause.pause_id not in {p.pause_id for p in (await ops.client.list_pauses()).pauses}

    # Lifting it again changes nothing.
    twice = await ops.client.resume_sending(pause.pause_id)
    assert twice.pause.resumed_at == resumed.pause.resumed_at


async def test_a_category_pause_with_transactional_messages(ops: OperationsStack) -> None:
    pause = await ops.client.pause_sending(
        pb.PAUSE_SCOPE_KIND_CATEGORY,
        "relationship",
        reason="brand review",
        include_transactional=True,
    )
    assert pause.include_transactional
    assert pause.scope.kind == pb.PAUSE_SCOPE_KIND_CATEGORY
    await ops.client.resume_sending(pause.pause_id)


async def test_unknown_ids_are_not_found(ops: OperationsStack) -> None:
    with pytest.raises(PauseNotFoundError):
        await ops.client.resume_sending("pause-0123456789abcdef")
    with pytest.raises(BulkOperationNotFoundError):
        await ops.client.get_bulk_operation("aftercare-cancel-0123456789abcdef")


@pytest.mark.parametrize(
    ("kind", "value", "reason", "field"),
    [
        (STEP, "crossell", "typo", "scope.value"),
        (pb.PAUSE_SCOPE_KIND_TEMPLATE, "no_such_template", "typo", "scope.value"),
        (pb.PAUSE_SCOPE_KIND_PLAN, "no-such-plan", "typo", "scope.value"),
        (pb.PAUSE_SCOPE_KIND_CATEGORY, "promotions", "typo", "scope.value"),
        (pb.PAUSE_SCOPE_KIND_UNSPECIFIED, "cross_sell", "typo", "scope.kind"),
        (STEP, "cross_sell", "", "reason"),
        (STEP, "cross_sell", "x" * 201, "reason"),
    ],
)
async def test_a_bad_pause_is_refused_naming_the_field(
    ops: OperationsStack,
    kind: pb.PauseScopeKind.ValueType,
    value: str,
    reason: str,
    field: str,
) -> None:
    before = await ops.client.list_pauses()
    with pytest.raises(InvalidRequestError) as raised:
        await ops.client.pause_sending(kind, value, reason=reason)
    assert set(raised.value.fields) == {field}
    assert await ops.client.list_pauses() == before


@pytest.mark.parametrize(
    ("journeys", "action", "reason", "fields"),
    [
        (pb.JourneyFilter(), pb.BULK_ACTION_CANCEL, "recall", {"filter"}),
        (pb.JourneyFilter(plan="default"), pb.BULK_ACTION_UNSPECIFIED, "recall", {"action"}),
        (pb.JourneyFilter(plan="default"), pb.BULK_ACTION_CANCEL, "", {"reason"}),
        (pb.JourneyFilter(plan="DEFAULT"), pb.BULK_ACTION_PAUSE, "x", {"filter.plan"}),
        (
            pb.JourneyFilter(customer_id="+49 151 2345678"),
            pb.BULK_ACTION_PAUSE,
            "x",
            {"filter.customer_id"},
        ),
        (
            pb.JourneyFilter(
                started_after=Timestamp(seconds=2_000_000_000),
                started_before=Timestamp(seconds=1_000_000_000),
            ),
            pb.BULK_ACTION_RESUME,
            "x",
            {"filter.started_before"},
        ),
        (
            pb.JourneyFilter(stage=journey_pb2.JourneyStage.ValueType(42)),
            pb.BULK_ACTION_PAUSE_ALL,
            "x",
            {"filter.stage"},
        ),
    ],
)
async def test_a_bad_bulk_operation_is_refused_naming_the_fields(
    ops: OperationsStack,
    journeys: pb.JourneyFilter,
    action: pb.BulkAction.ValueType,
    reason: str,
    fields: set[str],
) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        await ops.client.start_bulk_operation(action, journeys, reason=reason)
    assert set(raised.value.fields) == fields


async def test_bad_ids_and_filters_elsewhere_are_refused(ops: OperationsStack) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        await ops.client.resume_sending("")
    assert set(raised.value.fields) == {"pause_id"}
    with pytest.raises(InvalidRequestError) as raised:
        await ops.client.get_bulk_operation("job id with spaces")
    assert set(raised.value.fields) == {"job_id"}
    with pytest.raises(InvalidRequestError) as raised:
        await ops.client.count_journeys(pb.JourneyFilter(plan='x" OR 1=1'))
    assert set(raised.value.fields) == {"filter.plan"}


async def test_a_dry_run_counts_and_starts_nothing(ops: OperationsStack) -> None:
    nobody = pb.JourneyFilter(customer_id="cus-nobody-at-all")
    counted = await ops.client.start_bulk_operation(pb.BULK_ACTION_CANCEL, nobody, dry_run=True)
    assert counted.count == 0
    assert counted.job_id == ""
    assert 'CustomerId = "cus-nobody-at-all"' in counted.query
    assert (await ops.client.count_journeys(nobody)).count == 0


async def test_a_key_without_journeys_admin_may_do_nothing(ops: OperationsStack) -> None:
    async with AftercareClient(
        ops.settings.grpc_target, api_key=ops.unprivileged_key
    ) as unprivileged:
        for call in (
            unprivileged.pause_sending(STEP, "cross_sell", reason="not allowed"),
            unprivileged.resume_sending("pause-0123456789abcdef"),
            unprivileged.list_pauses(),
            unprivileged.count_journeys(),
            unprivileged.start_bulk_operation(
                pb.BULK_ACTION_CANCEL, pb.JourneyFilter(plan="default"), reason="not allowed"
            ),
            unprivileged.get_bulk_operation("aftercare-cancel-0123456789abcdef"),
        ):
            with pytest.raises(PermissionDeniedError, match="journeys:admin"):
                await call
    assert not [p for p in (await ops.client.list_pauses()).pauses if p.reason == "not allowed"]
