"""A bound on how long any handler of the API may run (``AFTERCARE_GRPC_CALL_TIMEOUT_SECONDS``).

A client's own deadline protects the client; this protects the server from
callers that send none (or a very long one) while a dependency hangs: the
handler is cancelled and the call ends DEADLINE_EXCEEDED. Only calls with a
single response are bounded; streaming responses (health's Watch, reflection)
are long-lived by design.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

import grpc

# grpc.RpcMethodHandler: grpcio ships no type information.
Handler: TypeAlias = Any


def _bounded(
    behavior: Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]],
    seconds: float,
) -> Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]:
    async def run(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        timer = asyncio.timeout(seconds)
        try:
            async with timer:
                return await behavior(request, context)
        except TimeoutError:
            if not timer.expired():
                raise  # the handler's own TimeoutError, not our bound
            await context.abort(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"the server stopped this call after {seconds:g} s",
            )

    return run


class HandlerTimeoutInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError("seconds: must be greater than 0")
        self._seconds = seconds

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None or handler.response_streaming:
            return handler
        if handler.request_streaming:
            behavior, wrap = handler.stream_unary, grpc.stream_unary_rpc_method_handler
        else:
            behavior, wrap = handler.unary_unary, grpc.unary_unary_rpc_method_handler
        if behavior is None or not inspect.iscoroutinefunction(behavior):
            return handler
        return wrap(
            _bounded(behavior, self._seconds),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
