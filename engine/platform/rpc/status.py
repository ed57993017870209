"""Mapping failures to gRPC status codes with machine-readable details."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from clients.aftercare_client import CUSTOMER_ERASED, NO_PLAN
from engine.journeys.errors import (
    CustomerWasErased,
    JourneyAlreadyExists,
    JourneyEnded,
    JourneyError,
    JourneyNotFound,
    NoPlanApplies,
)
from engine.platform.rpc.violations import InvalidRequest


def invalid_argument(error: InvalidRequest) -> grpc.Status:
    """INVALID_ARGUMENT carrying ``google.rpc.BadRequest`` field violations."""
    bad_request = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
            for v in error.violations
        ]
    )
    detail = any_pb2.Any()
    detail.Pack(bad_request)
    return rpc_status.to_status(
        status_pb2.Status(
            code=code_pb2.INVALID_ARGUMENT,
            message=f"invalid request: {error}",
            details=[detail],
        )
    )


def customer_erased(error: CustomerWasErased) -> grpc.Status:
    """FAILED_PRECONDITION with a ``google.rpc.PreconditionFailure`` whose violation
    names the request field (``order.customer.id``): retrying cannot help."""
    return _precondition_failed(CUSTOMER_ERASED, error.field, str(error))


def no_plan(error: NoPlanApplies) -> grpc.Status:
    """FAILED_PRECONDITION naming ``order``: the deployment's plans do not cover it
    (a plan must be added, or the order's data is not what the plans expect)."""
    return _precondition_failed(NO_PLAN, error.field, str(error))


def _precondition_failed(kind: str, subject: str, message: str) -> grpc.Status:
    failure = error_details_pb2.PreconditionFailure(
        violations=[
            error_details_pb2.PreconditionFailure.Violation(
                type=kind, subject=subject, description=message
            )
        ]
    )
    detail = any_pb2.Any()
    detail.Pack(failure)
    return rpc_status.to_status(
        status_pb2.Status(code=code_pb2.FAILED_PRECONDITION, message=message, details=[detail])
    )


def journey_error_code(error: JourneyError) -> grpc.StatusCode:
    if isinstance(error, JourneyNotFound):
        return grpc.StatusCode.NOT_FOUND
    if isinstance(error, JourneyAlreadyExists):
        return grpc.StatusCode.ALREADY_EXISTS
    if isinstance(error, JourneyEnded | CustomerWasErased | NoPlanApplies):
        return grpc.StatusCode.FAILED_PRECONDITION
    return grpc.StatusCode.INTERNAL
