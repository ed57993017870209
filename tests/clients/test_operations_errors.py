"""The operations methods' own exceptions: what was not found says what it was, a
refused bulk operation says Temporal is busy, and nothing about an operation reads
as a journey that ended."""

from __future__ import annotations

import grpc
import pytest

from clients import (
    AftercareClient,
    AftercareError,
    BulkOperationNotFoundError,
    JourneyNotFoundError,
    NotFoundError,
    PauseNotFoundError,
    PermissionDeniedError,
    TooManyBulkOperationsError,
)
from tests.clients.calls import OPERATIONS_CALLS, MethodCall
from tests.support.fake_api import FakeServer, Refusal

Code = grpc.StatusCode
NOT_FOUND_TYPES = {
    "resume_sending": PauseNotFoundError,
    "get_bulk_operation": BulkOperationNotFoundError,
}


@pytest.mark.parametrize("call", OPERATIONS_CALLS, ids=str)
async def test_not_found_names_what_the_call_named(
    call: MethodCall, fake: FakeServer, client: AftercareClient
) -> None:
    fake.api.refusals[call.rpc] = Refusal(Code.NOT_FOUND, "no such thing")
    with pytest.raises(NotFoundError) as raised:
        await call.invoke(client)
    assert type(raised.value) is NOT_FOUND_TYPES.get(call.name, NotFoundError)
    assert not isinstance(raised.value, JourneyNotFoundError)
    assert raised.value.message == "no such thing"
    assert isinstance(raised.value.__cause__, grpc.aio.AioRpcError)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (Code.RESOURCE_EXHAUSTED, TooManyBulkOperationsError),
        (Code.PERMISSION_DENIED, PermissionDeniedError),
        # No operation answers it; it must not read as a journey that ended.
        (Code.FAILED_PRECONDITION, AftercareError),
    ],
    ids=lambda value: value.name if isinstance(value, Code) else value.__name__,
)
async def test_other_codes_of_a_bulk_operation(
    code: grpc.StatusCode,
    expected: type[AftercareError],
    fake: FakeServer,
    client: AftercareClient,
) -> None:
    start = next(call for call in OPERATIONS_CALLS if call.rpc == "StartBulkOperation")
    fake.api.refusals[start.rpc] = Refusal(code, "refused")
    with pytest.raises(AftercareError) as raised:
        await start.invoke(client)
    assert type(raised.value) is expected
    assert raised.value.code == code
