"""A dev stack kept from an earlier release gains the search attributes added since:
``start-dev`` registers them only when it creates its database, so the dev server
registers what is missing once it is up."""

from __future__ import annotations

import asyncio
from pathlib import Path

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client

from engine.devstack.temporal_server import TemporalDevServer
from tests.support.net import free_port
from workflows import search_attributes as sa


async def attributes(address: str) -> dict[str, int]:
    client = await Client.connect(address)
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace)
    )
    return {name: int(kind) for name, kind in listed.custom_attributes.items()}


def without_attributes(command: list[str], *, keep: str) -> list[str]:
    """``command`` registering only the attribute ``keep``."""
    kept: list[str] = []
    args = iter(command)
    for arg in args:
        if arg == "--search-attribute":
            value = next(args)
            if value.startswith(f"{keep}="):
                kept += [arg, value]
        else:
            kept.append(arg)
    return kept


async def test_a_kept_database_gains_the_attributes_added_since(tmp_path: Path) -> None:
    database = tmp_path / "temporal.db"
    # The database as an earlier release left it: only the first attribute.
    older = TemporalDevServer(port=free_port(), ui_port=None, db_file=database)
    command = without_attributes(older.command(), keep=sa.ORDER_ID.name)
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        await older._wait_ready(60)
        before = await attributes(older.address)
    finally:
        process.terminate()
        await process.wait()
    assert set(before) & {key.name for key in sa.ALL} == {sa.ORDER_ID.name}

    server = TemporalDevServer(port=free_port(), ui_port=None, db_file=database)
    await server.start()
    try:
        after = await attributes(server.address)
    finally:
        await server.stop()

    assert after[sa.JOURNEY_PAUSED.name] == IndexedValueType.INDEXED_VALUE_TYPE_BOOL
    assert {key.name for key in sa.ALL} <= set(after)
