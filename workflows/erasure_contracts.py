"""What an erasure asks of its activities, and what it reports (see
``workflows.erasure``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

ERASURE_WORKFLOW_PREFIX = "erasure-"
SWEEP_WORKFLOW_PREFIX = "erasure-sweep-"
MARK_ERASED_ACTIVITY = "erasure_mark"
OWNED_JOURNEYS_ACTIVITY = "erasure_owned_journeys"
CLOSE_JOURNEY_ACTIVITY = "erasure_close_journey"
FORGET_ROWS_ACTIVITY = "erasure_forget_rows"
ANONYMISE_LEDGER_ACTIVITY = "erasure_anonymise_ledger"
DESTROY_KEY_ACTIVITY = "erasure_destroy_key"


@dataclass(frozen=True)
class ErasureRequest:
    customer_id: str


@dataclass(frozen=True)
class Marked:
    preference_rows_deleted: int
    consent_rows_deleted: int
    already_erased: bool
    erased_at: datetime


@dataclass(frozen=True)
class OwnedJourney:
    workflow_id: str
    # When its owner was registered (None: found through visibility only).
    registered_at: datetime | None = None


@dataclass(frozen=True)
class CloseJourney:
    journey: OwnedJourney
    reason: str


class Closed:
    TERMINATED = "terminated"  # it was running: ended now
    ENDED = "ended"  # it had ended on its own
    ABSENT = "absent"  # it never started (or Temporal no longer keeps it)


@dataclass(frozen=True)
class SweepRequest:
    """What is forgotten of a customer: rows keyed by their id, and the ledger rows
    of their journeys."""

    customer_id: str
    workflow_ids: list[str]


@dataclass(frozen=True)
class RowsForgotten:
    cap_slots: int = 0
    phone_rows: int = 0
    feedback_rows: int = 0
    ledger_rows: int = 0
    push_devices: int = 0


@dataclass(frozen=True)
class AnonymiseLedger:
    workflow_ids: list[str]


@dataclass
class ErasureProgress:
    """What the erasure has done so far (its query) and, once done, its result."""

    stage: str = "marking"
    journeys_found: int = 0
    journeys_terminated: int = 0
    preference_rows_deleted: int = 0
    consent_rows_deleted: int = 0
    cap_slots_deleted: int = 0
    phone_rows_deleted: int = 0
    feedback_rows_deleted: int = 0
    ledger_rows_anonymised: int = 0
    data_key_destroyed: bool = False
    already_erased: bool = False
    erased_at: datetime | None = None
    finished: bool = False
    journeys: list[str] = field(default_factory=list)


ERASURE_REASON = "customer erased (GDPR / CCPA request)"
