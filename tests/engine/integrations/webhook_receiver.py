"""A subscriber's endpoint for the tests: a real HTTP server (aiohttp) that verifies
every Standard Webhooks signature with the library and keeps what it accepted."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from tests.support.net import free_port


@dataclass(frozen=True)
class Received:
    webhook_id: str
    body: dict[str, Any]

    @property
    def type(self) -> str:
        return str(self.body["type"])

    @property
    def data(self) -> dict[str, Any]:
        data: dict[str, Any] = self.body["data"]
        return data


@dataclass
class Receiver:
    url: str
    # Secrets by the URL path they guard (one path per subscription).
    secrets: dict[str, str] = field(default_factory=dict)
    accepted: dict[str, list[Received]] = field(default_factory=dict)
    refused_bad_signature: int = 0
    # While set, every request is answered 500 (a subscriber that is down).
    failing: bool = False
    failed_requests: int = 0

    def url_for(self, path: str) -> str:
        return f"{self.url}/{path}"

    async def handle(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        body = await request.read()
        secret = self.secrets.get(path)
        if secret is None:
            return web.Response(status=404)
        if self.failing:
            self.failed_requests += 1
            return web.Response(status=500)
        try:
            payload = Webhook(secret).verify(body, dict(request.headers))
        except WebhookVerificationError:
            self.refused_bad_signature += 1
            return web.Response(status=401)
        self.accepted.setdefault(path, []).append(
            Received(request.headers["webhook-id"], json.loads(body) if payload else {})
        )
        return web.Response(status=204)


@asynccontextmanager
async def webhook_receiver() -> AsyncIterator[Receiver]:
    port = free_port()
    receiver = Receiver(url=f"http://127.0.0.1:{port}")
    app = web.Application()
    app.router.add_post("/{path}", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield receiver
    finally:
        await runner.cleanup()
