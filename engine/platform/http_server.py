"""Serve an ASGI app with uvicorn inside the running event loop.

``aftercare run`` and the tests already run an event loop (Temporal worker, gRPC
API); the HTTP app joins it as one more task instead of owning the process:
uvicorn's own signal handling stays off, the process's handlers stay in charge.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import uvicorn
from starlette.types import ASGIApp

# How long shutdown waits for requests in flight before cancelling them.
GRACEFUL_SHUTDOWN_SECONDS = 5


class HttpServerError(RuntimeError):
    """The server could not start (most often: the port is taken)."""


@dataclass(frozen=True)
class HttpServer:
    host: str
    port: int  # the bound port, also when 0 was asked for

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # Leave SIGINT/SIGTERM to the process that embeds us.
        yield


@contextlib.asynccontextmanager
async def serve_http(app: ASGIApp, host: str, port: int) -> AsyncIterator[HttpServer]:
    """Serve ``app`` on host:port (0: any free port) until the block ends."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        lifespan="off",
        # Keep the process's logging setup; no access log lines per callback.
        log_config=None,
        access_log=False,
        server_header=False,
        # Believe no proxy about the client's address: the apps decide which
        # proxies they trust (engine.platform.http_limits.trusting_proxies). uvicorn
        # would otherwise take X-Forwarded-For from any local peer.
        proxy_headers=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    server = _EmbeddedServer(config)

    async def run() -> None:
        try:
            await server.serve()
        except SystemExit as exc:
            # uvicorn exits the process when it cannot bind; here that must be
            # an ordinary error of this task, not the end of the event loop.
            raise HttpServerError(f"HTTP server could not start on {host}:{port}") from exc

    task = asyncio.create_task(run(), name=f"http-server-{host}:{port}")
    try:
        while not server.started:
            if task.done():
                task.result()  # raises what stopped it
                raise HttpServerError(f"HTTP server on {host}:{port} stopped while starting")
            await asyncio.sleep(0.01)
        sockets = server.servers[0].sockets
        bound_port: int = sockets[0].getsockname()[1]
        yield HttpServer(host=host, port=bound_port)
    finally:
        server.should_exit = True
        await task
