"""Mapping failures to gRPC status codes with machine-readable details."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from engine.api.violations import InvalidRequest
from engine.journeys import JourneyAlreadyExists, JourneyEnded, JourneyError, JourneyNotFound


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


def journey_error_code(error: JourneyError) -> grpc.StatusCode:
    if isinstance(error, JourneyNotFound):
        return grpc.StatusCode.NOT_FOUND
    if isinstance(error, JourneyAlreadyExists):
        return grpc.StatusCode.ALREADY_EXISTS
    if isinstance(error, JourneyEnded):
        return grpc.StatusCode.FAILED_PRECONDITION
    return grpc.StatusCode.INTERNAL
