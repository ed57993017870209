"""The HTTP process serves Shopify's endpoint when shops are configured, and answers
"retry" (503) while Temporal is out of reach."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import pytest

from engine.integrations.shopify.signature import sign
from engine.integrations.shopify.webhooks import SHOPIFY_PATH
from engine.platform.database.migrate import upgrade_database
from engine.platform.http_server import serve_http
from engine.platform.secret_values import MissingSecret
from engine.platform.settings import Settings
from engine.processes.dev_stack import with_dev_secrets
from engine.processes.http import http_app
from tests.engine.integrations.shopify_payloads import new_shopify_id, order_created
from tests.support.databases import sqlite_url
from tests.support.net import free_port

SHOP = "northside-roasters.myshopify.com"
SECRET = "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"


def settings_for(tmp_path: Path, **extra: str) -> Settings:
    database = sqlite_url(tmp_path)
    upgrade_database(database)
    return with_dev_secrets(
        Settings(
            _env_file=None,
            state_dir=tmp_path,
            database_url=database,
            # Nothing listens there: Temporal is out of reach.
            temporal_address=f"127.0.0.1:{free_port()}",
            **extra,  # type: ignore[arg-type]
        )
    )


async def post_order(url: str, *, signed: bool) -> httpx.Response:
    body = json.dumps(order_created(new_shopify_id())).encode()
    headers = {
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Shop-Domain": SHOP,
        "X-Shopify-Webhook-Id": str(uuid.uuid4()),
        "X-Shopify-Hmac-Sha256": sign(SECRET, body) if signed else "AAAA",
    }
    async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
        return await http.post(url, content=body, headers=headers)


async def test_the_endpoint_is_served_for_configured_shops(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, shopify_webhook_secrets=f"{SHOP}={SECRET}")
    async with http_app(settings) as app, serve_http(app, "127.0.0.1", 0) as server:
        url = f"{server.url}{SHOPIFY_PATH}"
        assert (await post_order(url, signed=False)).status_code == 401
        # Genuine, but Temporal cannot be reached: Shopify is told to retry.
        unavailable = await post_order(url, signed=True)
        assert unavailable.status_code == 503
        assert "retry" in unavailable.json()["error"]


async def test_without_shops_there_is_no_endpoint(tmp_path: Path) -> None:
    async with http_app(settings_for(tmp_path)) as app, serve_http(app, "127.0.0.1", 0) as server:
        assert (await post_order(f"{server.url}{SHOPIFY_PATH}", signed=True)).status_code == 404


async def test_a_malformed_secrets_setting_stops_the_app_naming_it(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, shopify_webhook_secrets="just-a-secret-without-a-shop")
    with pytest.raises(MissingSecret, match="AFTERCARE_SHOPIFY_WEBHOOK_SECRETS") as err:
        async with http_app(settings):
            pass
    assert "just-a-secret" not in str(err.value)
