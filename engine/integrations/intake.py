"""Orders and events that arrive by another road than the gRPC API (a shop's webhooks,
an event bus), taken exactly as the API takes them.

Each arrives as the API's own request (``StartJourneyRequest`` / ``RecordEventRequest``)
and goes through the API's parsing and the journey directory, so the validation, the
field names in errors and the idempotency (one journey per order id, an event once per
event id) are the API's. What cannot succeed however often it is tried is raised as
:class:`Refused`; anything else that goes wrong (Temporal or the database out of reach)
propagates unchanged: the caller's delivery should be retried.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

from aftercare.v1 import journey_pb2 as pb
from temporalio.client import WorkflowExecutionStatus

from engine.journeys import parsing
from engine.journeys.directory import JourneyDirectory
from engine.journeys.errors import (
    CustomerWasErased,
    JourneyAlreadyExists,
    JourneyEnded,
    JourneyNotFound,
    NoPlanApplies,
)
from engine.platform.rpc.violations import FieldViolation, InvalidRequest

JourneyRequest = pb.StartJourneyRequest | pb.RecordEventRequest


class RefusalKind(StrEnum):
    INVALID = "invalid"  # a field is wrong: the violations name it
    NO_JOURNEY = "no_journey"  # an event for an order without a journey (yet)
    ENDED = "ended"  # the order's journey has ended: nothing more to do
    NO_PLAN = "no_plan"  # no plan of the deployment covers the order
    ERASED = "erased"  # the customer was erased: no journey may start for them


class Refused(Exception):
    """The request cannot succeed as it stands; ``violations`` name the fields."""

    def __init__(self, kind: RefusalKind, reason: str, violations: list[FieldViolation]) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.violations = violations


@dataclass(frozen=True)
class Taken:
    journey_id: str
    # For a start: whether this request created the journey (False: it was running).
    created: bool | None = None


class Intake(Protocol):
    """What takes the API's requests (a :class:`JourneyIntake`, or one made lazily)."""

    async def take(self, request: JourneyRequest) -> Taken: ...


class JourneyIntake:
    def __init__(self, directory: JourneyDirectory) -> None:
        self._directory = directory

    async def take(self, request: JourneyRequest) -> Taken:
        """Start the journey or record the event, as the API would; Refused when that
        cannot succeed, the directory's own error when it might on another try."""
        now = datetime.now(UTC)
        try:
            if isinstance(request, pb.StartJourneyRequest):
                order = parsing.start_request(request, now=now)
                started = await self._directory.start(order)
                return Taken(started.journey_id, started.created)
            wanted = parsing.event_request(request, now=now)
            journey_id = await self._directory.record_event(
                wanted.order_id, wanted.event, wanted.order
            )
            return Taken(journey_id)
        except InvalidRequest as err:
            raise Refused(RefusalKind.INVALID, str(err), err.violations) from None
        except JourneyNotFound as err:
            raise Refused(RefusalKind.NO_JOURNEY, str(err), []) from None
        except JourneyEnded as err:
            if err.status == WorkflowExecutionStatus.RUNNING:
                # The signal found no journey and the look that followed found it
                # running: its start was in flight beside this event.
                raise Refused(RefusalKind.NO_JOURNEY, str(err), []) from None
            raise Refused(RefusalKind.ENDED, str(err), []) from None
        except JourneyAlreadyExists as err:
            raise Refused(RefusalKind.ENDED, str(err), []) from None
        except NoPlanApplies as err:
            raise Refused(
                RefusalKind.NO_PLAN, str(err), [FieldViolation(err.field, str(err))]
            ) from None
        except CustomerWasErased as err:
            raise Refused(
                RefusalKind.ERASED, str(err), [FieldViolation(err.field, str(err))]
            ) from None


class ConnectingIntake:
    """A :class:`JourneyIntake` whose directory is made at first use: the process
    serving it starts, and answers "retry" (ConnectionError), while Temporal is
    unreachable; the next request tries again."""

    def __init__(self, make: Callable[[], Awaitable[JourneyDirectory]]) -> None:
        self._make = make
        self._intake: JourneyIntake | None = None
        self._lock = asyncio.Lock()

    async def take(self, request: JourneyRequest) -> Taken:
        async with self._lock:
            if self._intake is None:
                self._intake = JourneyIntake(await self._make())
        return await self._intake.take(request)
