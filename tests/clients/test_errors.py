"""Failures arrive as the typed exceptions the client documents, never as raw gRPC
errors: each keeps the status code and message, chains the gRPC error, and carries
what the details say (field violations; which precondition failed, which decides the
exception on every method)."""

from __future__ import annotations

import inspect

import grpc
import pytest
from aftercare.v1 import journey_pb2 as pb
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from clients import (
    AftercareClient,
    AftercareError,
    AuthenticationError,
    CustomerErasedError,
    DeadlineExceededError,
    InvalidRequestError,
    JourneyEndedError,
    JourneyExistsError,
    JourneyNotFoundError,
    NoPlanError,
    PermissionDeniedError,
    ServiceUnavailableError,
)
from clients.aftercare_client import CUSTOMER_ERASED, NO_PLAN
from tests.clients.calls import EVERY_CALL, JOURNEY_CALLS, PREFERENCES_CALLS, MethodCall
from tests.support.fake_api import JOURNEY_METHODS, FakeServer, Refusal
from tests.support.net import free_port

Code = grpc.StatusCode


def bad_request(**violations: str) -> error_details_pb2.BadRequest:
    return error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=field, description=description)
            for field, description in violations.items()
        ]
    )


def precondition(kind: str, subject: str) -> error_details_pb2.PreconditionFailure:
    return error_details_pb2.PreconditionFailure(
        violations=[
            error_details_pb2.PreconditionFailure.Violation(
                type=kind, subject=subject, description=f"{kind} about {subject}"
            )
        ]
    )


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (Code.NOT_FOUND, JourneyNotFoundError),
        (Code.ALREADY_EXISTS, JourneyExistsError),
        (Code.FAILED_PRECONDITION, JourneyEndedError),
        (Code.UNAVAILABLE, ServiceUnavailableError),
        (Code.UNAUTHENTICATED, AuthenticationError),
        (Code.PERMISSION_DENIED, PermissionDeniedError),
        (Code.INVALID_ARGUMENT, InvalidRequestError),
        # Sent by the server when a handler runs past its own bound.
        (Code.DEADLINE_EXCEEDED, DeadlineExceededError),
        # Codes without an exception of their own: the base class.
        (Code.INTERNAL, AftercareError),
        (Code.RESOURCE_EXHAUSTED, AftercareError),
        (Code.UNKNOWN, AftercareError),
        (Code.ABORTED, AftercareError),
    ],
    ids=lambda value: value.name if isinstance(value, Code) else value.__name__,
)
async def test_each_status_of_a_journey_call_maps_to_its_exception(
    code: grpc.StatusCode,
    expected: type[AftercareError],
    fake: FakeServer,
    client: AftercareClient,
) -> None:
    fake.api.refusals["GetJourney"] = Refusal(code, f"the server says {code.name}")

    with pytest.raises(AftercareError) as raised:
        await client.get_journey("A-1001")

    error = raised.value
    assert type(error) is expected
    assert error.code == code
    assert error.message == f"the server says {code.name}"
    assert str(error) == f"the server says {code.name}"
    assert isinstance(error.__cause__, grpc.aio.AioRpcError)
    assert error.__cause__.code() == code


async def test_every_journey_method_translates_errors(
    fake: FakeServer, client: AftercareClient
) -> None:
    fake.api.refuse_everything(Refusal(Code.NOT_FOUND, "no journey for order A-1001"))
    calls = [
        client.start_journey(pb.Order(order_id="A-1001")),
        client.record_event("A-1001", pb.OrderEvent(event_id="e1")),
        client.record_event_with_order(
            "A-1001", pb.OrderEvent(event_id="e1"), pb.Order(order_id="A-1001")
        ),
        client.get_journey("A-1001"),
        client.cancel_journey("A-1001"),
        client.list_journeys(customer_id="cus_42"),
    ]
    for call in calls:
        with pytest.raises(JourneyNotFoundError, match="no journey for order A-1001"):
            await call
    assert {received.method for received in fake.api.calls} == set(JOURNEY_METHODS)
    assert len(fake.api.calls) == 6


async def test_an_invalid_request_lists_its_field_violations(
    fake: FakeServer, client: AftercareClient
) -> None:
    details = bad_request(
        **{
            "order.customer.email": "not an email address",
            "order.items[0].quantity": "must be at least 1",
        }
    )
    fake.api.refusals["StartJourney"] = Refusal(
        Code.INVALID_ARGUMENT, "invalid request: 2 problems", (details,)
    )

    with pytest.raises(InvalidRequestError) as raised:
        await client.start_journey(pb.Order(order_id="A-1001"))

    assert raised.value.code == Code.INVALID_ARGUMENT
    assert raised.value.message == "invalid request: 2 problems"
    assert raised.value.fields == {
        "order.customer.email": "not an email address",
        "order.items[0].quantity": "must be at least 1",
    }


async def test_violations_from_several_bad_request_details_are_merged_and_others_ignored(
    fake: FakeServer, client: AftercareClient
) -> None:
    fake.api.refusals["RecordEvent"] = Refusal(
        Code.INVALID_ARGUMENT,
        "invalid request",
        (
            bad_request(order_id="required"),
            # Not a BadRequest: no fields in it.
            precondition(NO_PLAN, "order"),
            bad_request(**{"event.type": "unspecified"}),
        ),
    )

    with pytest.raises(InvalidRequestError) as raised:
        await client.record_event("", pb.OrderEvent())

    assert raised.value.fields == {"order_id": "required", "event.type": "unspecified"}


async def test_an_invalid_request_without_details_has_no_fields(
    fake: FakeServer, client: AftercareClient
) -> None:
    fake.api.refusals["GetJourney"] = Refusal(Code.INVALID_ARGUMENT, "order_id: required")

    with pytest.raises(InvalidRequestError) as raised:
        await client.get_journey("")

    assert raised.value.fields == {}
    assert raised.value.message == "order_id: required"


async def test_no_plan_is_its_own_error(fake: FakeServer, client: AftercareClient) -> None:
    fake.api.refusals["StartJourney"] = Refusal(
        Code.FAILED_PRECONDITION,
        "no journey plan applies to order A-1001",
        (precondition(NO_PLAN, "order"),),
    )

    with pytest.raises(NoPlanError) as raised:
        await client.start_journey(pb.Order(order_id="A-1001"))

    assert raised.value.code == Code.FAILED_PRECONDITION
    assert raised.value.message == "no journey plan applies to order A-1001"
    # Not a JourneyEndedError: nothing ended, nothing was started.
    assert not isinstance(raised.value, JourneyEndedError)


async def test_no_plan_among_other_violations_is_still_no_plan(
    fake: FakeServer, client: AftercareClient
) -> None:
    failure = error_details_pb2.PreconditionFailure(
        violations=[
            error_details_pb2.PreconditionFailure.Violation(type="SOMETHING_ELSE", subject="x"),
            error_details_pb2.PreconditionFailure.Violation(type=NO_PLAN, subject="order"),
        ]
    )
    fake.api.refusals["RecordEvent"] = Refusal(Code.FAILED_PRECONDITION, "no plan", (failure,))

    with pytest.raises(NoPlanError):
        await client.record_event_with_order(
            "A-1001", pb.OrderEvent(event_id="e1"), pb.Order(order_id="A-1001")
        )


@pytest.mark.parametrize("call", JOURNEY_CALLS, ids=str)
async def test_an_erased_customer_on_a_journey_call_is_customer_erased(
    call: MethodCall, fake: FakeServer, client: AftercareClient
) -> None:
    # What the server answers StartJourney (or a starting RecordEvent) for an erased
    # customer: FAILED_PRECONDITION with a CUSTOMER_ERASED violation.
    fake.api.refusals[call.rpc] = Refusal(
        Code.FAILED_PRECONDITION,
        "order.customer.id: the customer was erased",
        (precondition(CUSTOMER_ERASED, "order.customer.id"),),
    )

    with pytest.raises(CustomerErasedError) as raised:
        await call.invoke(client)

    assert type(raised.value) is CustomerErasedError
    assert raised.value.code == Code.FAILED_PRECONDITION
    assert raised.value.message == "order.customer.id: the customer was erased"
    # Still caught by what caught it before it had its own type.
    assert isinstance(raised.value, JourneyEndedError)
    cause = raised.value.__cause__
    assert isinstance(cause, grpc.aio.AioRpcError)
    status = rpc_status.from_call(cause)
    assert status is not None
    failure = error_details_pb2.PreconditionFailure()
    assert status.details[0].Unpack(failure)
    assert [(v.type, v.subject) for v in failure.violations] == [
        (CUSTOMER_ERASED, "order.customer.id")
    ]
    assert [received.method for received in fake.api.calls] == [call.rpc]


@pytest.mark.parametrize(
    ("kind", "expected"),
    [(CUSTOMER_ERASED, CustomerErasedError), (NO_PLAN, NoPlanError)],
    ids=[CUSTOMER_ERASED, NO_PLAN],
)
@pytest.mark.parametrize("call", EVERY_CALL, ids=str)
async def test_the_precondition_type_decides_the_exception_on_every_method(
    kind: str,
    expected: type[AftercareError],
    call: MethodCall,
    fake: FakeServer,
    client: AftercareClient,
) -> None:
    fake.api.refusals[call.rpc] = Refusal(
        Code.FAILED_PRECONDITION, f"{kind} refused", (precondition(kind, "subject"),)
    )

    with pytest.raises(AftercareError) as raised:
        await call.invoke(client)

    assert type(raised.value) is expected
    assert raised.value.code == Code.FAILED_PRECONDITION
    assert raised.value.message == f"{kind} refused"
    assert isinstance(raised.value.__cause__, grpc.aio.AioRpcError)


async def test_erased_wins_over_no_plan_when_both_are_named(
    fake: FakeServer, client: AftercareClient
) -> None:
    failure = error_details_pb2.PreconditionFailure(
        violations=[
            error_details_pb2.PreconditionFailure.Violation(type=NO_PLAN, subject="order"),
            error_details_pb2.PreconditionFailure.Violation(
                type=CUSTOMER_ERASED, subject="order.customer.id"
            ),
        ]
    )
    fake.api.refusals["StartJourney"] = Refusal(Code.FAILED_PRECONDITION, "refused", (failure,))

    with pytest.raises(CustomerErasedError):
        await client.start_journey(pb.Order(order_id="A-1001"))


async def test_another_precondition_on_a_journey_call_is_still_a_journey_ended_error(
    fake: FakeServer, client: AftercareClient
) -> None:
    fake.api.refusals["CancelJourney"] = Refusal(
        Code.FAILED_PRECONDITION,
        "the journey has ended",
        (precondition("SOMETHING_ELSE", "order_id"),),
    )

    with pytest.raises(JourneyEndedError) as raised:
        await client.cancel_journey("A-1001")

    assert type(raised.value) is JourneyEndedError


@pytest.mark.parametrize("detail", ["with the detail", "without details"])
@pytest.mark.parametrize("call", PREFERENCES_CALLS, ids=str)
async def test_failed_precondition_on_a_preferences_call_means_the_customer_was_erased(
    call: MethodCall, detail: str, fake: FakeServer, client: AftercareClient
) -> None:
    # PreferencesService itself answers erasure without details; either way it is erasure.
    details = (precondition(CUSTOMER_ERASED, "customer_id"),) if detail == "with the detail" else ()
    fake.api.refusals[call.rpc] = Refusal(
        Code.FAILED_PRECONDITION, "customer_id: the customer was erased", details
    )

    with pytest.raises(CustomerErasedError) as raised:
        await call.invoke(client)

    assert type(raised.value) is CustomerErasedError
    assert raised.value.code == Code.FAILED_PRECONDITION
    assert raised.value.message == "customer_id: the customer was erased"
    # Chained straight to the gRPC error, like every other exception.
    assert isinstance(raised.value.__cause__, grpc.aio.AioRpcError)
    assert [received.method for received in fake.api.calls] == [call.rpc]


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (Code.INVALID_ARGUMENT, InvalidRequestError),
        (Code.UNAUTHENTICATED, AuthenticationError),
        (Code.PERMISSION_DENIED, PermissionDeniedError),
        (Code.UNAVAILABLE, ServiceUnavailableError),
        (Code.INTERNAL, AftercareError),
    ],
    ids=lambda value: value.name if isinstance(value, Code) else value.__name__,
)
async def test_other_statuses_of_a_preferences_call_map_as_for_journeys(
    code: grpc.StatusCode,
    expected: type[AftercareError],
    fake: FakeServer,
    client: AftercareClient,
) -> None:
    details = (bad_request(update_mask="unknown path"),) if code == Code.INVALID_ARGUMENT else ()
    fake.api.refusals["Unsubscribe"] = Refusal(code, "refused", details)

    with pytest.raises(AftercareError) as raised:
        await client.unsubscribe("cus_42")

    assert type(raised.value) is expected
    assert raised.value.code == code
    if isinstance(raised.value, InvalidRequestError):
        assert raised.value.fields == {"update_mask": "unknown path"}


async def test_a_server_that_is_not_there_is_unavailable() -> None:
    async with AftercareClient(f"127.0.0.1:{free_port()}", timeout_seconds=2) as nobody:
        with pytest.raises(ServiceUnavailableError) as raised:
            await nobody.get_journey("A-1001")
    assert raised.value.code == Code.UNAVAILABLE


def test_the_calls_cover_every_public_method() -> None:
    public = {
        name
        for name, member in inspect.getmembers(AftercareClient, inspect.iscoroutinefunction)
        if not name.startswith("_")
    }
    assert {call.name for call in EVERY_CALL} == public - {"close"}
