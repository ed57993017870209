"""Every method of every ``aftercare.v1`` service, read from the proto descriptors.

The services are found from the ``.proto`` files themselves, so a new file or a
new RPC shows up here (and in the scope and auth tests) without anyone listing it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message_factory import GetMessageClass

PROTO_DIR = Path(__file__).resolve().parents[2] / "proto" / "aftercare" / "v1"


@dataclass(frozen=True)
class ApiMethod:
    path: str  # /aftercare.v1.Service/Method
    service: str
    name: str
    request: type[Any]
    response: type[Any]
    client_streaming: bool
    server_streaming: bool

    def __str__(self) -> str:
        return self.path


def _method(descriptor: MethodDescriptor) -> ApiMethod:
    service = descriptor.containing_service.full_name
    return ApiMethod(
        path=f"/{service}/{descriptor.name}",
        service=service,
        name=descriptor.name,
        request=GetMessageClass(descriptor.input_type),
        response=GetMessageClass(descriptor.output_type),
        client_streaming=descriptor.client_streaming,
        server_streaming=descriptor.server_streaming,
    )


def api_methods() -> list[ApiMethod]:
    methods: list[ApiMethod] = []
    for proto in sorted(PROTO_DIR.glob("*.proto")):
        module = importlib.import_module(f"aftercare.v1.{proto.stem}_pb2")
        for service in module.DESCRIPTOR.services_by_name.values():
            methods.extend(_method(method) for method in service.methods)
    return methods
