"""Connecting to Temporal the same way from every process."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.service import RPCError

from engine.platform.codec.runtime import converter_for, customer_keys_for
from engine.platform.logging import get_logger
from engine.platform.settings import Settings
from engine.platform.telemetry.runtime import Process, instruments_for, process_runtime
from engine.platform.telemetry.tracing import temporal_interceptors
from engine.platform.temporal.tls import (
    TemporalConfigError,
    refusal,
    temporal_access,
    unreachable_hint,
)

log = get_logger(__name__)

__all__ = ["TemporalConfigError", "connect"]


async def connect(
    settings: Settings,
    *,
    wait: timedelta = timedelta(seconds=0),
    data_converter: DataConverter | None = None,
    process: Process | None = None,
) -> Client:
    """Connect to the configured server, retrying for up to ``wait`` while it starts.

    TLS, mutual TLS and the API key come from the ``temporal_tls*`` and
    ``temporal_api_key`` settings (:mod:`engine.platform.temporal.tls`). A setting that
    cannot work (an unreadable file, a certificate or key the server refuses) raises
    TemporalConfigError at once, naming the setting: only a server that is not up yet
    is waited for.

    Payloads are encrypted with the service's keys (:mod:`engine.platform.codec`), each journey
    under its customer's data key (so the database must be migrated), unless another
    ``data_converter`` is given; workers made from the client use it too. The key
    store is ``engine.platform.codec.customer_codec.customer_keys_of(client)``.

    ``process`` names the process the client serves: its runtime (and so the workers
    made from the client) exports metrics on that process's /metrics, when its
    port setting is not 0 (:mod:`engine.platform.telemetry.runtime`).
    """
    # Files first: a typo in a path fails before the codec opens the database.
    access = temporal_access(settings)
    if access.api_key is not None and not access.uses_tls:
        log.warning(
            "temporal api key sent without tls",
            address=settings.temporal_address,
            reason="AFTERCARE_TEMPORAL_TLS is false",
        )
    runtime = process_runtime(settings, process) if process is not None else None
    converter = data_converter or converter_for(
        settings,
        customer_keys_for(settings),
        instruments=instruments_for(settings, process) if process is not None else None,
    )
    address = settings.temporal_address
    deadline = asyncio.get_running_loop().time() + wait.total_seconds()
    while True:
        try:
            return await Client.connect(
                address,
                namespace=settings.temporal_namespace,
                data_converter=converter,
                tls=access.tls,
                api_key=access.api_key,
                runtime=runtime,
                # Traces (when on): workers made from the client inherit it.
                interceptors=temporal_interceptors(settings),
            )
        except (RPCError, RuntimeError, OSError) as err:
            reason = refusal(err, settings, access)
            if reason is not None:
                raise TemporalConfigError(
                    f"Temporal at {address} refused the connection: {reason}"
                ) from err
            if asyncio.get_running_loop().time() >= deadline:
                raise ConnectionError(
                    f"cannot reach Temporal at {address}: {err}{unreachable_hint(err, access)}"
                ) from err
            log.info("waiting for temporal", address=address)
            await asyncio.sleep(0.5)
