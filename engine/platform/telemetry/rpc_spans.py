"""The final status code of a gRPC call on its server span.

OpenTelemetry's gRPC instrumentation notes the code of ``context.abort`` and
``set_code``, not of ``abort_with_status``, which the API answers bad requests with
(``engine.platform.rpc.answers``, for the rich error details): such a span would say
OK. This interceptor, placed right inside the instrumentation's, reads the code the
call ended with and puts it on the span; a server-side failure (per OpenTelemetry's
conventions for gRPC servers: not a caller's mistake) marks the span as an error,
described by the code's name only: never the message, which may echo the request.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

import grpc
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

# grpc.RpcMethodHandler: grpcio ships no type information.
Handler: TypeAlias = Any
Behaviour: TypeAlias = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]

# The attribute the instrumentation sets (semantic conventions: rpc.grpc.status_code).
STATUS_CODE = "rpc.grpc.status_code"

SERVER_FAILURES = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)


class SpanStatusInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None or handler.response_streaming:
            return handler
        if handler.request_streaming:
            behaviour, wrap = handler.stream_unary, grpc.stream_unary_rpc_method_handler
        else:
            behaviour, wrap = handler.unary_unary, grpc.unary_unary_rpc_method_handler
        if behaviour is None or not inspect.iscoroutinefunction(behaviour):
            return handler
        return wrap(
            _noting_status(behaviour),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _noting_status(behaviour: Behaviour) -> Behaviour:
    async def run(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            return await behaviour(request, context)
        except asyncio.CancelledError:
            _note(grpc.StatusCode.CANCELLED)
            raise
        except Exception:
            # An abort, or an unhandled exception grpc answers UNKNOWN.
            _note(status_code(context.code()) or grpc.StatusCode.UNKNOWN)
            raise

    return run


def status_code(code: object) -> grpc.StatusCode | None:
    """``context.code()`` as a StatusCode (grpc.aio gives the enum or its number)."""
    for candidate in grpc.StatusCode:
        if code is candidate or candidate.value[0] == code:
            return candidate
    return None


def _note(code: grpc.StatusCode) -> None:
    span = trace.get_current_span()
    span.set_attribute(STATUS_CODE, code.value[0])
    if code in SERVER_FAILURES:
        span.set_status(Status(StatusCode.ERROR, code.name))
