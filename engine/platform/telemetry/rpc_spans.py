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
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from engine.platform.grpc_handlers import Behaviour, Handler, status_code, wrap_unary_response

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
        return wrap_unary_response(await continuation(handler_call_details), _noting_status)


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


def _note(code: grpc.StatusCode) -> None:
    span = trace.get_current_span()
    span.set_attribute(STATUS_CODE, code.value[0])
    if code in SERVER_FAILURES:
        span.set_status(Status(StatusCode.ERROR, code.name))
