"""Building and running the gRPC server: JourneyService, health and reflection."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from aftercare.v1 import journey_pb2 as pb
from aftercare.v1 import journey_pb2_grpc as pb_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from engine.api.journey_service import JourneyServicer
from engine.journeys import JourneyDirectory

JOURNEY_SERVICE_NAME = pb.DESCRIPTOR.services_by_name["JourneyService"].full_name
# Orders with hundreds of items stay far below this; anything bigger is abuse.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024


class PortInUse(RuntimeError):
    pass


@dataclass
class ApiServer:
    server: grpc.aio.Server
    health: health.aio.HealthServicer
    port: int

    async def start(self) -> None:
        await self.server.start()
        for name in ("", JOURNEY_SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    async def stop(self, grace_seconds: float = 5.0) -> None:
        # Tell load balancers first, then let calls in flight finish.
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace_seconds)


def build_server(directory: JourneyDirectory, address: str) -> ApiServer:
    """A server bound to ``address`` (port 0 picks a free one)."""
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            # Without this a second process could bind the same port silently.
            ("grpc.so_reuseport", 0),
        ]
    )
    pb_grpc.add_JourneyServiceServicer_to_server(JourneyServicer(directory), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (JOURNEY_SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    try:
        port = server.add_insecure_port(address)
    except RuntimeError as err:
        raise PortInUse(f"cannot listen on {address}: {err}") from err
    if port == 0:
        raise PortInUse(f"cannot listen on {address}: the address is in use")
    return ApiServer(server=server, health=health_servicer, port=port)
