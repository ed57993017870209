"""How journey data becomes Temporal payloads: JSON through pydantic.

Journey data holds datetimes, durations and nested dataclasses; the pydantic
converter carries them all. Clients, workers and replayers must share it.
"""

from __future__ import annotations

import functools
from typing import Any

from pydantic import TypeAdapter
from temporalio.contrib.pydantic import PydanticPayloadConverter
from temporalio.converter import DataConverter

# One pydantic TypeAdapter per type for the whole process. The SDK makes a payload
# converter per workflow instance inside the sandbox, each with its own empty cache,
# so every new journey would generate the schemas of its dataclasses again, the
# largest single cost of a journey worker under load (docs/performance.md).
_shared_type_adapters: functools._lru_cache_wrapper[TypeAdapter[Any]] = functools.lru_cache(
    maxsize=1024
)(TypeAdapter)


class JourneyPayloadConverter(PydanticPayloadConverter):
    def __init__(self) -> None:
        super().__init__()
        json_converter = self.converters[b"json/plain"]
        json_converter._type_adapter = _shared_type_adapters  # type: ignore[attr-defined]


DATA_CONVERTER = DataConverter(payload_converter_class=JourneyPayloadConverter)
