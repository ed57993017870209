"""Limits for the HTTP endpoints anyone can reach: a rate limit per client, and
which proxies may say who the client is. (The third, a cap on request bodies, is
Starlette's own: ``Route(..., max_body_size=N)`` answers 413 to a request that
announces a larger ``Content-Length`` as soon as the endpoint starts reading, and
to a chunked body the moment it grows past N, before any parser is done with it.)

**Rate limit.** :class:`RateLimit` counts requests per client address in a moving
window (the ``limits`` package). The counts live in this process's memory: enough
for one process serving the endpoints, which is how the service runs them; several
processes behind a balancer would each allow the full rate (a shared storage such
as Redis would then be needed). A client over the limit gets 429 with Retry-After
(whole seconds until the oldest counted request leaves the window), and nothing of
its request is read.

**Client address.** The address is the peer of the TCP connection. Behind a proxy
that is the proxy, so every client shares one budget, unless the proxy is listed in
``AFTERCARE_TRUSTED_PROXIES``: then, for requests that come from such a proxy, the
``X-Forwarded-For`` header names the client (read from the right, skipping trusted
proxies, so a client cannot pose as another by sending the header itself) and
``X-Forwarded-Proto`` the scheme. That is uvicorn's own proxy-header middleware,
applied by :func:`trusting_proxies`; the server itself trusts no proxy
(``engine.platform.http_server``), so nothing else rewrites the address.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from engine.platform.logging import get_logger

log = get_logger(__name__)

# How a client with no address (a Unix socket) is counted: all of them together.
UNKNOWN_CLIENT = "unknown"


class RateLimit:
    """At most ``rate`` requests per client address in any moving window, e.g.
    ``"60/minute"`` (the ``limits`` notation); ``name`` keeps the counts of
    different limits apart."""

    def __init__(self, rate: str, name: str) -> None:
        self._item: RateLimitItem = parse(rate)
        self._name = name
        # In memory: see the module docstring for what that means with several processes.
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    @property
    def name(self) -> str:
        return self._name

    async def retry_after(self, scope: Scope) -> int | None:
        """Count this request; None when it is within the limit, else the seconds
        until the client may try again (at least 1)."""
        client = client_address(scope)
        if await self._limiter.hit(self._item, self._name, client):
            return None
        stats = await self._limiter.get_window_stats(self._item, self._name, client)
        return max(1, math.ceil(stats.reset_time - time.time()))


class Throttled:
    """ASGI middleware that answers 429 (with Retry-After) to a client over ``limit``
    before ``app`` sees anything of its request: ``Route(..., middleware=[
    Middleware(Throttled, limit=...)])``, one :class:`RateLimit` for every route
    that shares its budget."""

    def __init__(self, app: ASGIApp, *, limit: RateLimit) -> None:
        self._app = app
        self._limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            wait = await self._limit.retry_after(scope)
            if wait is not None:
                # Neither the path (link pages carry their token in it) nor the
                # address (personal data) goes to the log.
                log.warning("rate limit reached", limit=self._limit.name, retry_after=wait)
                response = PlainTextResponse(
                    f"too many requests; try again in {wait} s",
                    status_code=429,
                    headers={"Retry-After": str(wait)},
                )
                await response(scope, receive, send)
                return
        await self._app(scope, receive, send)


def client_address(scope: Scope) -> str:
    """The client's address as the connection (or a trusted proxy) tells it."""
    client = scope.get("client")
    return str(client[0]) if client else UNKNOWN_CLIENT


def trusting_proxies(proxies: Sequence[str]) -> list[Middleware]:
    """The middleware that believes ``proxies`` (IP addresses or networks) about the
    client's address and scheme; none when the list is empty."""
    if not proxies:
        return []
    return [Middleware(ProxyHeadersMiddleware, trusted_hosts=list(proxies))]
