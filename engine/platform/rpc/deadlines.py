"""A bound on how long any handler of the API may run (``AFTERCARE_GRPC_CALL_TIMEOUT_SECONDS``).

A client's own deadline protects the client; this protects the server from
callers that send none (or a very long one) while a dependency hangs: the
handler is cancelled and the call ends DEADLINE_EXCEEDED. Only calls with a
single response are bounded; streaming responses (health's Watch, reflection)
are long-lived by design.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from engine.platform.grpc_handlers import Behaviour, Handler, wrap_unary_response


def _bounded(behavior: Behaviour, seconds: float) -> Behaviour:
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
        return wrap_unary_response(
            await continuation(handler_call_details),
            lambda behavior: _bounded(behavior, self._seconds),
        )
