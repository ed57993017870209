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

log = get_logger(__name__)


async def connect(
    settings: Settings,
    *,
    wait: timedelta = timedelta(seconds=0),
    data_converter: DataConverter | None = None,
) -> Client:
    """Connect to the configured server, retrying for up to ``wait`` while it starts.

    Payloads are encrypted with the service's keys (:mod:`engine.platform.codec`), each journey
    under its customer's data key (so the database must be migrated), unless another
    ``data_converter`` is given; workers made from the client use it too. The key
    store is ``engine.platform.codec.customer_codec.customer_keys_of(client)``.
    """
    converter = data_converter or converter_for(settings, customer_keys_for(settings))
    deadline = asyncio.get_running_loop().time() + wait.total_seconds()
    while True:
        try:
            return await Client.connect(
                settings.temporal_address,
                namespace=settings.temporal_namespace,
                data_converter=converter,
            )
        except (RPCError, RuntimeError, OSError) as err:
            if asyncio.get_running_loop().time() >= deadline:
                raise ConnectionError(
                    f"cannot reach Temporal at {settings.temporal_address}: {err}"
                ) from err
            log.info("waiting for temporal", address=settings.temporal_address)
            await asyncio.sleep(0.5)
