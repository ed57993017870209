"""Traces: one API call, one trace, from the gRPC server span through the journey's
workflow and activity spans down to the provider call (:mod:`provider_calls`),
exported over OTLP/gRPC.

Off unless ``AFTERCARE_OTLP_ENDPOINT`` is set: then no tracer provider, exporter,
interceptor or background thread exists, and the few spans our own code asks for
(``provider_call``) come from OpenTelemetry's no-op tracer.

On, each process (``aftercare api``, ``worker``, ``http``, or the dev stack) sets
up one tracer provider with a batching OTLP exporter for its service name when it
starts (:func:`process_tracing`), and flushes it when it stops. (The codec server
calls nothing worth a span.) Then:

* the gRPC API's server span comes from OpenTelemetry's gRPC instrumentation
  (:func:`grpc_server_interceptors`), which also joins a trace the caller sends
  in ``traceparent``;
* the Temporal client's calls, the workflows and the activities get their spans
  from the SDK's ``TracingInterceptor`` (:func:`temporal_interceptors`, put on
  every client by ``engine.platform.temporal.connection.connect`` and so on every
  worker made from one): the trace context travels in Temporal headers, which the
  journey never reads, so histories replay the same with or without it.

The SDK's interceptor puts everything a workflow does under the call that started
it. A journey lives for weeks and is moved on by events, so ours
(:class:`JourneyTracingInterceptor`) puts a signal that carries a trace context
(``RecordEvent``'s, a preference change's) in that trace, and the activities the
journey starts after it too; before any, they are in the start's: the shipping
notice belongs to the ``RecordEvent`` that said the order shipped.

No span carries personal data: span names are operation and type names, attributes
are ids (journey ids are made from order ids), method names, status codes and peer
addresses; no request or payload is recorded. Exception texts can still quote what
a library saw, so every string leaves the process through
:func:`engine.platform.redaction.redact`, as log lines do.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import grpc
import opentelemetry.context
import opentelemetry.trace
import temporalio.client
import temporalio.worker
from opentelemetry.instrumentation.grpc import aio_server_interceptor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Status
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import Attributes, AttributeValue
from temporalio.api.common.v1 import Payload
from temporalio.contrib.opentelemetry import (
    TracingInterceptor,
    TracingWorkflowInboundInterceptor,
)

from engine.platform.logging import get_logger
from engine.platform.redaction import redact
from engine.platform.settings import Settings
from engine.platform.telemetry.rpc_spans import SpanStatusInterceptor

log = get_logger(__name__)

# The service name each process reports (the resource's service.name).
API_SERVICE = "aftercare-api"
WORKER_SERVICE = "aftercare-worker"
HTTP_SERVICE = "aftercare-http"
# `aftercare run`: every part in one process.
DEV_STACK_SERVICE = "aftercare"

_installed: TracerProvider | None = None


def tracing_enabled(settings: Settings) -> bool:
    return settings.otlp_endpoint is not None


@asynccontextmanager
async def process_tracing(settings: Settings, service_name: str) -> AsyncIterator[bool]:
    """Trace this process as ``service_name`` while the context lasts, if an OTLP
    endpoint is set (yields whether it is). Once per process: OpenTelemetry's global
    tracer provider can be set only once. On exit the spans still queued are sent
    (waiting up to the exporter's timeout for a collector that does not answer)."""
    global _installed
    if not tracing_enabled(settings):
        yield False
        return
    if _installed is not None:
        raise RuntimeError("tracing is set up once per process")
    provider = tracer_provider(settings, service_name)
    opentelemetry.trace.set_tracer_provider(provider)
    _installed = provider
    log.info("tracing on", endpoint=settings.otlp_endpoint, service=service_name)
    try:
        yield True
    finally:
        # Blocks on the export thread: keep the event loop free meanwhile.
        await asyncio.to_thread(provider.shutdown)


def tracer_provider(settings: Settings, service_name: str) -> TracerProvider:
    """A provider sending batches to ``settings.otlp_endpoint`` (http:// plaintext,
    https:// TLS). The standard ``OTEL_*`` variables still apply where we set
    nothing: the sampler (``OTEL_TRACES_SAMPLER``, parent-based always-on by
    default), the exporter's headers, certificates and timeout, resource
    attributes."""
    # Imported here: a process that traces nothing never loads the exporter.
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    assert settings.otlp_endpoint is not None
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service_name}))
    exporter = OTLPSpanExporter(endpoint=settings.otlp_endpoint)
    provider.add_span_processor(BatchSpanProcessor(RedactingSpanExporter(exporter)))
    return provider


def temporal_interceptors(settings: Settings) -> list[temporalio.client.Interceptor]:
    """What ``connect()`` puts on every Temporal client (and so on its workers)."""
    if not tracing_enabled(settings):
        return []
    return [JourneyTracingInterceptor()]


def grpc_server_interceptors(settings: Settings) -> list[grpc.aio.ServerInterceptor]:
    """The gRPC API's server span, first of its interceptors so that it covers a call
    the API-key check refuses too, and its final status code (:mod:`rpc_spans`). The
    instrumentation records method, status code, peer address and user agent; never
    other metadata (the API key) or messages."""
    if not tracing_enabled(settings):
        return []
    interceptor: grpc.aio.ServerInterceptor = aio_server_interceptor()  # type: ignore[no-untyped-call]
    return [interceptor, SpanStatusInterceptor()]


# Only the trace context (traceparent, tracestate) goes into Temporal's headers, which
# the history keeps unencrypted: not the W3C baggage a caller may send along with it,
# which could hold anything.
PROPAGATOR = TraceContextTextMapPropagator()


class JourneyTracingInterceptor(TracingInterceptor):
    """The SDK's ``TracingInterceptor``, with the workflow side below and the trace
    context alone in headers. Its tracer is the global one, resolved at each span:
    connecting before :func:`process_tracing` is entered still traces."""

    def __init__(self) -> None:
        super().__init__()
        self.text_map_propagator = PROPAGATOR

    def workflow_interceptor_class(
        self, input: temporalio.worker.WorkflowInterceptorClassInput
    ) -> type[TracingWorkflowInboundInterceptor]:
        super().workflow_interceptor_class(input)
        return SignalledTracingWorkflowInterceptor


class SignalledTracingWorkflowInterceptor(TracingWorkflowInboundInterceptor):
    """A signal that carries a trace context (``RecordEvent``, a preference change)
    is handled in that trace, and the activities the workflow starts after it are
    traced there too, under the signal's ``SignalWorkflow`` span (with a link to the
    journey's own trace), instead of under the call that started the journey.

    The context comes from the signal's header, which is in the history: a workflow
    replayed after a restart picks the same parent for what it does next. Nothing
    here changes a command, so histories replay as before.
    """

    def __init__(self, next: temporalio.worker.WorkflowInboundInterceptor) -> None:
        super().__init__(next)
        self.text_map_propagator = PROPAGATOR
        self._signal_carrier: dict[str, Any] | None = None

    async def handle_signal(self, input: temporalio.worker.HandleSignalInput) -> None:
        carrier = self._carrier_of(input.headers)
        if carrier is None:
            await super().handle_signal(input)
            return
        self._signal_carrier = carrier
        with self._in_signal_trace():
            self._completed_span(
                f"HandleSignal:{input.signal}",
                link_context_carrier=self._load_workflow_context_carrier(),
                kind=opentelemetry.trace.SpanKind.SERVER,
            )
        await self.next.handle_signal(input)

    def _completed_span(self, span_name: str, **kwargs: Any) -> None:
        if self._signal_carrier is None or not span_name.startswith("StartActivity:"):
            super()._completed_span(span_name, **kwargs)
            return
        with self._in_signal_trace():
            super()._completed_span(span_name, **kwargs)

    @contextmanager
    def _in_signal_trace(self) -> Iterator[None]:
        assert self._signal_carrier is not None
        context = self._set_on_context(self.text_map_propagator.extract(self._signal_carrier))
        token = opentelemetry.context.attach(context)
        try:
            yield
        finally:
            opentelemetry.context.detach(token)

    def _carrier_of(self, headers: Mapping[str, Payload]) -> dict[str, Any] | None:
        header = headers.get(self.header_key)
        if not header:
            return None
        carrier = self.payload_converter.from_payloads([header])[0]
        return carrier if isinstance(carrier, dict) and carrier else None


class RedactingSpanExporter(SpanExporter):
    """Hands ``inner`` each span with every email address and phone number in its
    name, attributes, events and status replaced (``engine.platform.redaction``):
    exception texts and stack traces recorded by libraries may quote them."""

    def __init__(self, inner: SpanExporter) -> None:
        self._inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self._inner.export([redacted_span(span) for span in spans])

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._inner.force_flush(timeout_millis)


def redacted_span(span: ReadableSpan) -> ReadableSpan:
    status = span.status
    if status.description:
        status = Status(status.status_code, redact(status.description))
    return ReadableSpan(
        name=redact(span.name),
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=_redacted_attributes(span.attributes),
        events=[
            Event(redact(event.name), _redacted_attributes(event.attributes), event.timestamp)
            for event in span.events
        ],
        links=span.links,
        kind=span.kind,
        status=status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


def _redacted_attributes(attributes: Attributes) -> dict[str, AttributeValue] | None:
    if attributes is None:
        return None
    return {key: _redacted_value(value) for key, value in attributes.items()}


def _redacted_value(value: AttributeValue) -> AttributeValue:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Sequence) and all(isinstance(item, str) for item in value):
        return [redact(str(item)) for item in value]
    return value
