"""A real OTLP/gRPC trace receiver for tests: what a collector would be sent, kept as
plain spans."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str | None
    attributes: dict[str, object]
    # Every text the span carries: name, attribute keys and values, events, status,
    # resource: what must never hold personal data.
    texts: tuple[str, ...]


class TraceCollector(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []

    async def Export(  # noqa: N802 - the generated service's method name
        self,
        request: trace_service_pb2.ExportTraceServiceRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        for resource_spans in request.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            resource_texts = _texts_of(resource_spans.resource.attributes)
            service = str(resource.get("service.name", ""))
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    texts = [span.name, span.status.message, *resource_texts]
                    texts += _texts_of(span.attributes)
                    for event in span.events:
                        texts += [event.name, *_texts_of(event.attributes)]
                    for link in span.links:
                        texts += _texts_of(link.attributes)
                    self.spans.append(
                        ReceivedSpan(
                            service=service,
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex() or None,
                            attributes=_attributes(span.attributes),
                            texts=tuple(texts),
                        )
                    )
        return trace_service_pb2.ExportTraceServiceResponse()


@dataclass
class OtlpReceiver:
    """``async with OtlpReceiver() as receiver``: listening on ``receiver.endpoint``."""

    collector: TraceCollector = field(default_factory=TraceCollector)
    port: int = 0

    async def __aenter__(self) -> OtlpReceiver:
        self._server = grpc.aio.server()
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(  # type: ignore[no-untyped-call]
            self.collector, self._server
        )
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        await self._server.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._server.stop(None)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def spans(self) -> list[ReceivedSpan]:
        return list(self.collector.spans)


def _value(value: AnyValue) -> object:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    return getattr(value, kind) if kind else None


def _attributes(pairs: Iterable[KeyValue]) -> dict[str, object]:
    return {pair.key: _value(pair.value) for pair in pairs}


def _texts_of(pairs: Iterable[KeyValue]) -> list[str]:
    texts: list[str] = []
    for pair in pairs:
        texts.append(pair.key)
        texts += _flattened(_value(pair.value))
    return texts


def _flattened(value: object) -> list[str]:
    if isinstance(value, dict):
        return [text for key, item in value.items() for text in (key, *_flattened(item))]
    if isinstance(value, list):
        return [text for item in value for text in _flattened(item)]
    return [str(value)]
