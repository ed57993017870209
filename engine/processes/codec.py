"""The codec server process (``aftercare codec``): lets ops with the codec token read
journeys' encrypted payloads in the Temporal UI and CLI (``engine.platform.codec.server``)."""

from __future__ import annotations

from starlette.applications import Starlette

from engine.platform.codec.customer_keys import CustomerKeys
from engine.platform.codec.runtime import (
    codec_for,
    codec_token_for,
    customer_keys_for,
    require_secrets,
)
from engine.platform.codec.server import build_codec_app
from engine.platform.http_server import serve_http
from engine.platform.logging import get_logger
from engine.platform.settings import Settings
from engine.platform.telemetry.runtime import Process, instruments_for
from engine.processes.lifecycle import stop_event

log = get_logger(__name__)


def codec_app(settings: Settings, customer_keys: CustomerKeys) -> Starlette:
    """The codec server decoding with the service's keys and ``customer_keys`` (share
    the store with the worker and the API, so an erasure shows at once). Starts the
    codec process's /metrics when its port is set (its decoding errors are counted)."""
    return build_codec_app(
        codec_for(settings, customer_keys, instruments=instruments_for(settings, Process.CODEC)),
        codec_token_for(settings),
        ui_origin=settings.codec_ui_origin,
        login_rate_limit=settings.codec_login_rate_limit,
        trusted_proxies=settings.trusted_proxies,
    )


async def run_codec(settings: Settings) -> None:
    require_secrets(settings, codec_token=True)
    stop = stop_event()
    customer_keys = customer_keys_for(settings)
    try:
        app = codec_app(settings, customer_keys)
        async with serve_http(app, settings.codec_host, settings.codec_port):
            log.info("codec server listening", host=settings.codec_host, port=settings.codec_port)
            await stop.wait()
    finally:
        await customer_keys.aclose()
