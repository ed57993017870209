"""Client library for Aftercare's gRPC API."""

from aftercare.v1 import journey_pb2 as messages

from clients.aftercare_client import (
    AftercareClient,
    AftercareError,
    AuthenticationError,
    BulkOperationNotFoundError,
    ClientClosedError,
    CustomerErasedError,
    DeadlineExceededError,
    InvalidRequestError,
    JourneyEndedError,
    JourneyExistsError,
    JourneyNotFoundError,
    NoPlanError,
    NotFoundError,
    PauseNotFoundError,
    PermissionDeniedError,
    ServiceUnavailableError,
    TooManyBulkOperationsError,
)

__all__ = [
    "AftercareClient",
    "AftercareError",
    "AuthenticationError",
    "BulkOperationNotFoundError",
    "ClientClosedError",
    "CustomerErasedError",
    "DeadlineExceededError",
    "InvalidRequestError",
    "JourneyEndedError",
    "JourneyExistsError",
    "JourneyNotFoundError",
    "NoPlanError",
    "NotFoundError",
    "PauseNotFoundError",
    "PermissionDeniedError",
    "ServiceUnavailableError",
    "TooManyBulkOperationsError",
    "messages",
]
