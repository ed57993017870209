"""Every metric Aftercare exports: its name, kind and labels, the contract between the
code that records it and the alert rules and dashboard in ``deploy/``.

All of them are recorded through the Temporal SDK's metric meter (the process's
runtime, an activity's or a workflow's meter), so one ``/metrics`` endpoint per process
serves ours beside the SDK's own ``temporal_*`` series. Counters carry the ``_total``
suffix on the wire; durations are in seconds.

No label ever holds personal data or an unbounded value: labels are plan, step,
template, category, channel, outcome and reason codes from fixed vocabularies, gRPC
method names and status codes, and HTTP route templates (never the path as requested).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from workflows import metrics as journey_metrics


class Kind(StrEnum):
    COUNTER = "counter"
    HISTOGRAM = "histogram"
    GAUGE = "gauge"


@dataclass(frozen=True)
class Metric:
    name: str  # as recorded; Prometheus sees counters as name + "_total"
    kind: Kind
    help: str
    labels: tuple[str, ...]
    buckets: tuple[float, ...] = ()

    @property
    def series(self) -> str:
        """The name a PromQL query uses."""
        return f"{self.name}_total" if self.kind == Kind.COUNTER else self.name


# Seconds: a provider answers in milliseconds to seconds; a step is late by seconds
# (a busy worker) to hours (a deferral, a pause); an event's message follows in
# seconds to minutes (those two are recorded by the journey: workflows.metrics).
FAST_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
SLOW_SECONDS = journey_metrics.SLOW_SECONDS


def _journey(histogram: journey_metrics.JourneyHistogram) -> Metric:
    return Metric(
        histogram.name, Kind.HISTOGRAM, histogram.help, histogram.labels, histogram.buckets
    )


class Outcome(StrEnum):
    """What became of one attempt at a message (MESSAGES' ``outcome``)."""

    SENT = "sent"
    FAILED = "failed"  # the provider failed for now: the attempt is retried
    BOUNCED = "bounced"  # the provider refused the address for good
    UNAVAILABLE = "unavailable"  # no such channel, or no address on it
    REFUSED = "refused"  # no consent, or the address is suppressed
    DEFERRED = "deferred"  # over the frequency cap: tried again at its slot
    STALE = "stale"  # over the cap past its stale limit: dropped
    SKIPPED = "skipped"  # the journey cancelled it (moot) before the provider had it
    PAUSED = "paused"  # held by an operator's pause


class Reason(StrEnum):
    """Why (MESSAGES' ``reason``); ``none`` for a message sent."""

    NONE = "none"
    PROVIDER_ERROR = "provider_error"
    PROVIDER_NO_ANSWER = "provider_no_answer"  # may have been taken: held for its report
    PROVIDER_REFUSED = "provider_refused"
    NO_CHANNEL = "no_channel"
    CHANNEL_UNAVAILABLE = "channel_unavailable"
    NO_ADDRESS = "no_address"
    SUPPRESSED = "suppressed"
    NO_CONSENT = "no_consent"
    FREQUENCY_CAP = "frequency_cap"
    CANCELLED = "cancelled"
    OPERATOR_PAUSE = "operator_pause"


class DuplicateReason(StrEnum):
    """DUPLICATES_AVOIDED's ``reason``."""

    ALREADY_SETTLED = "already_settled"  # an earlier attempt sent or settled it
    LEASE_HELD = "lease_held"  # another attempt holds the live lease: this one waits


MESSAGES = Metric(
    "aftercare_messages",
    Kind.COUNTER,
    "Attempts at a message by what became of them (outcome and reason: "
    "engine.platform.telemetry.catalogue.Outcome and Reason): sent, failed (retried), "
    "bounced, unavailable, refused (consent or suppression), deferred (over the "
    "frequency cap), stale (dropped past its stale limit), skipped (cancelled as "
    "moot), paused (held by an operator's pause).",
    ("channel", "category", "template", "outcome", "reason"),
)
PROVIDER_CALL_SECONDS = Metric(
    "aftercare_provider_call_seconds",
    Kind.HISTOGRAM,
    "One call to a provider (SMTP, Twilio, the support desk), by outcome (ok, error).",
    ("provider", "operation", "outcome"),
    FAST_SECONDS,
)
STEP_LATENESS_SECONDS = _journey(journey_metrics.STEP_LATENESS)
EVENT_TO_MESSAGE_SECONDS = _journey(journey_metrics.EVENT_TO_MESSAGE)
DUPLICATES_AVOIDED = Metric(
    "aftercare_ledger_duplicates_avoided",
    Kind.COUNTER,
    "Sends the ledger answered without sending again: already sent, or another "
    "attempt holds the live lease.",
    ("channel", "reason"),
)
MESSAGES_WAITING = Metric(
    "aftercare_messages_waiting",
    Kind.GAUGE,
    "Ledger rows not yet settled, sampled by the worker, by status: sending (an attempt "
    "holds its live lease) or waiting (none does: deferred by the frequency cap, or "
    "backing off before a retry).",
    ("status",),
)
OLDEST_WAITING_SECONDS = Metric(
    "aftercare_messages_oldest_waiting_seconds",
    Kind.GAUGE,
    "Age of the oldest ledger row not yet settled (since its first claim), by status "
    "as in aftercare_messages_waiting; 0 when there is none.",
    ("status",),
)


class CodecReason(StrEnum):
    """CODEC_ERRORS' ``reason``."""

    UNKNOWN_KEY = "unknown_key"  # a master key id not in the keyring
    KEY_DESTROYED = "key_destroyed"  # the customer's data key was destroyed (erased)
    NO_CUSTOMER_KEYS = "no_customer_keys"  # a customer-key payload, a codec without the store
    BAD_CIPHERTEXT = "bad_ciphertext"  # altered, truncated, or not a payload inside
    MALFORMED = "malformed"  # the metadata lacks the key id
    KEY_STORE_ERROR = "key_store_error"  # the customer key store failed (database)


CODEC_ERRORS = Metric(
    "aftercare_codec_errors",
    Kind.COUNTER,
    "Payloads that could not be encoded or decoded, by operation (encode, decode) and "
    "reason (engine.platform.telemetry.catalogue.CodecReason).",
    ("operation", "reason"),
)
API_REQUESTS = Metric(
    "aftercare_api_requests",
    Kind.COUNTER,
    "gRPC calls by method and status code.",
    ("service", "method", "code"),
)
API_REQUEST_SECONDS = Metric(
    "aftercare_api_request_seconds",
    Kind.HISTOGRAM,
    "gRPC call latency by method and status code.",
    ("service", "method", "code"),
    FAST_SECONDS,
)
HTTP_REQUESTS = Metric(
    "aftercare_http_requests",
    Kind.COUNTER,
    "HTTP app requests by route template, method and status.",
    ("route", "method", "status"),
)
HTTP_REQUEST_SECONDS = Metric(
    "aftercare_http_request_seconds",
    Kind.HISTOGRAM,
    "HTTP app request latency by route template.",
    ("route", "method"),
    FAST_SECONDS,
)
SENDING_PAUSES = Metric(
    "aftercare_sending_pauses",
    Kind.GAUGE,
    "Pauses in force, by scope kind (plan, step, category, template), sampled.",
    ("scope",),
)

ALL: tuple[Metric, ...] = (
    MESSAGES,
    PROVIDER_CALL_SECONDS,
    STEP_LATENESS_SECONDS,
    EVENT_TO_MESSAGE_SECONDS,
    DUPLICATES_AVOIDED,
    MESSAGES_WAITING,
    OLDEST_WAITING_SECONDS,
    CODEC_ERRORS,
    API_REQUESTS,
    API_REQUEST_SECONDS,
    HTTP_REQUESTS,
    HTTP_REQUEST_SECONDS,
    SENDING_PAUSES,
)

# The SDK's own series the alerts and dashboard use (durations in seconds, counters
# with _total: engine.platform.telemetry.runtime configures the exporter so).
SDK_WORKFLOW_TASK_SCHEDULE_TO_START = "temporal_workflow_task_schedule_to_start_latency"
SDK_ACTIVITY_SCHEDULE_TO_START = "temporal_activity_schedule_to_start_latency"
SDK_STICKY_CACHE_SIZE = "temporal_sticky_cache_size"
SDK_WORKER_TASK_SLOTS_AVAILABLE = "temporal_worker_task_slots_available"
