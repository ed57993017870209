"""gRPC answers with machine-readable details: field violations and preconditions."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

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


def precondition_failed(kind: str, subject: str, message: str) -> grpc.Status:
    """FAILED_PRECONDITION with a ``google.rpc.PreconditionFailure`` of type ``kind``
    (one of ``aftercare.v1.failures``) about ``subject`` (a request field): retrying
    the same request cannot help."""
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
