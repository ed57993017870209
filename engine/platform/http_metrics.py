"""Every request an HTTP app answers, counted and timed by route, method and status.

The route is the template a request matched ("/u/{token}"), never the path as
requested: paths carry the signed tokens of customers' links. A request matching no
route counts as "unmatched", and a method outside the usual few as "OTHER", so no
caller can mint label values.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.platform.telemetry.catalogue import HTTP_REQUEST_SECONDS, HTTP_REQUESTS
from engine.platform.telemetry.runtime import Instruments

UNMATCHED = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def route_template(routes: Sequence[BaseRoute], scope: Scope) -> str:
    """The path template of the route ``scope`` asks for (by path, whatever the
    method: a 405 counts under its route too); UNMATCHED for none."""
    for route in routes:
        match, _ = route.matches(scope)
        if match != Match.NONE and isinstance(route, Route):
            return route.path
    return UNMATCHED


class RequestMetrics:
    """ASGI middleware; put it outermost, so every answer is counted."""

    def __init__(self, app: ASGIApp, *, routes: Sequence[BaseRoute], instruments: Instruments):
        self._app = app
        self._routes = routes
        self._requests = instruments.counter(HTTP_REQUESTS)
        self._seconds = instruments.histogram(HTTP_REQUEST_SECONDS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        # What an app that fails before answering ends with (Starlette's error page).
        status = 500

        async def answering(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._app(scope, receive, answering)
        finally:
            route = route_template(self._routes, scope)
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            self._requests.add(1, route=route, method=method, status=str(status))
            self._seconds.record(time.perf_counter() - started, route=route, method=method)
