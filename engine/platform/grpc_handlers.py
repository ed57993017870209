"""What the API's server interceptors share: wrapping a handler's behaviour, and
reading the status code a call ended with.

Each interceptor (the handler time bound, request metrics, the span's status) wraps
the coroutine that answers a call with a single response; streaming responses
(health's Watch, reflection) and synchronous handlers pass through untouched.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

import grpc

# grpc.RpcMethodHandler: grpcio ships no type information.
Handler: TypeAlias = Any
Behaviour: TypeAlias = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]


def wrap_unary_response(
    handler: Handler | None, decorate: Callable[[Behaviour], Behaviour]
) -> Handler | None:
    """``handler`` answering through ``decorate(its behaviour)`` when it is a
    coroutine with a single response; otherwise ``handler`` itself."""
    if handler is None or handler.response_streaming:
        return handler
    if handler.request_streaming:
        behaviour, wrap = handler.stream_unary, grpc.stream_unary_rpc_method_handler
    else:
        behaviour, wrap = handler.unary_unary, grpc.unary_unary_rpc_method_handler
    if behaviour is None or not inspect.iscoroutinefunction(behaviour):
        return handler
    return wrap(
        decorate(behaviour),
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def status_code(code: object) -> grpc.StatusCode | None:
    """``context.code()`` as a StatusCode (grpc.aio gives the enum or its number)."""
    for candidate in grpc.StatusCode:
        if code is candidate or candidate.value[0] == code:
            return candidate
    return None
