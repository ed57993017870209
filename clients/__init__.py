"""Client library for Aftercare's gRPC API."""

from aftercare.v1 import journey_pb2 as messages

from clients.aftercare_client import (
    AftercareClient,
    AftercareError,
    InvalidRequestError,
    JourneyEndedError,
    JourneyExistsError,
    JourneyNotFoundError,
    ServiceUnavailableError,
)

__all__ = [
    "AftercareClient",
    "AftercareError",
    "InvalidRequestError",
    "JourneyEndedError",
    "JourneyExistsError",
    "JourneyNotFoundError",
    "ServiceUnavailableError",
    "messages",
]
