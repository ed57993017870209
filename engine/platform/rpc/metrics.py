"""Every call the API answers, counted and timed by service, method and status code.

The interceptor goes first, so calls refused before their handler (no key, wrong
scope) are counted with their code too. Labels are the service and the method of a
handler the server has (a name a caller made up gets UNIMPLEMENTED from grpc and is
not counted: it would be a label anyone could mint) and the status code's name.
Calls with a streamed response (health's Watch, reflection) are long-lived by design
and not timed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from engine.platform.grpc_handlers import Behaviour, Handler, status_code, wrap_unary_response
from engine.platform.telemetry.catalogue import API_REQUEST_SECONDS, API_REQUESTS
from engine.platform.telemetry.runtime import Instruments


def split_method(full: str) -> tuple[str, str]:
    """The service and the method of a full method name:
    "/aftercare.v1.JourneyService/StartJourney" -> ("aftercare.v1.JourneyService",
    "StartJourney")."""
    service, _, method = full.lstrip("/").rpartition("/")
    return service, method


def status_name(code: object) -> str:
    """The StatusCode's name, whether grpc gives the enum or its integer value."""
    known = status_code(code)
    return known.name if known is not None else "UNKNOWN"


class RequestMetricsInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self, instruments: Instruments) -> None:
        self._requests = instruments.counter(API_REQUESTS)
        self._seconds = instruments.histogram(API_REQUEST_SECONDS)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        started = time.perf_counter()
        service, method = split_method(handler_call_details.method)
        return wrap_unary_response(
            await continuation(handler_call_details),
            lambda behaviour: self._measured(behaviour, service, method, started),
        )

    def _measured(
        self, behaviour: Behaviour, service: str, method: str, started: float
    ) -> Behaviour:
        async def run(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            code: object = grpc.StatusCode.UNKNOWN
            try:
                response = await behaviour(request, context)
                code = context.code() or grpc.StatusCode.OK
                return response
            except asyncio.CancelledError:
                # The client went away, or its deadline passed, or the server stops.
                code = grpc.StatusCode.CANCELLED
                raise
            except grpc.aio.AbortError:
                code = context.code()
                raise
            except Exception:
                # grpc answers an unhandled exception UNKNOWN, unless a code was set.
                code = context.code() or grpc.StatusCode.UNKNOWN
                raise
            finally:
                labels = {"service": service, "method": method, "code": status_name(code)}
                self._requests.add(1, **labels)
                self._seconds.record(time.perf_counter() - started, **labels)

        return run
