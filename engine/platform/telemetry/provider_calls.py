"""One call to a provider (the SMTP server, Twilio, the support desk): a span in the
activity's trace and the ``aftercare_provider_call_seconds`` histogram.

The span says which provider, which operation and how it went, and nothing of the
message: never the recipient, the subject or the body; a failure is marked with the
exception's type only, since provider texts quote the recipient. Outside an activity
(a benchmark, a test calling the sender directly) only the span is made, a no-op
unless the process traces (``engine.platform.telemetry.tracing``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from temporalio import activity

from engine.platform.telemetry.catalogue import PROVIDER_CALL_SECONDS

Provider = Literal["smtp", "twilio", "support_desk", "fcm", "webpush"]

# Span attributes (the histogram's labels are the same words without the prefix).
PROVIDER = "aftercare.provider"
OPERATION = "aftercare.operation"
OUTCOME = "aftercare.outcome"

_tracer = trace.get_tracer(__name__)


@contextmanager
def provider_call(provider: Provider, operation: str) -> Iterator[None]:
    """Time and trace the call made inside the block; it failed if the block raises
    (cancellation included)."""
    started = time.monotonic()
    outcome = "error"
    with _tracer.start_as_current_span(
        f"{provider} {operation}",
        kind=SpanKind.CLIENT,
        attributes={PROVIDER: provider, OPERATION: operation},
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield
            outcome = "ok"
        except BaseException as err:
            span.set_status(Status(StatusCode.ERROR, type(err).__name__))
            raise
        finally:
            span.set_attribute(OUTCOME, outcome)
            _record(provider, operation, outcome, time.monotonic() - started)


def _record(provider: str, operation: str, outcome: str, seconds: float) -> None:
    if not activity.in_activity():
        return
    activity.metric_meter().create_histogram_float(
        PROVIDER_CALL_SECONDS.name, PROVIDER_CALL_SECONDS.help, "s"
    ).record(seconds, {"provider": provider, "operation": operation, "outcome": outcome})
