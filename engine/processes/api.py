"""Building and running the gRPC server: JourneyService, health and reflection.

Every call to our services passes the API-key check (``engine.api.auth``) and is
bounded in time (``engine.api.deadlines``); TLS or mutual TLS when configured
(``engine.api.tls``).
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from aftercare.v1 import journey_pb2 as pb
from aftercare.v1 import journey_pb2_grpc as pb_grpc
from aftercare.v1 import preferences_pb2, preferences_pb2_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from engine.access.auth import ApiKeyInterceptor, Authenticator
from engine.access.tls import server_credentials
from engine.customers.service import PreferencesServicer
from engine.journeys.directory import JourneyDirectory
from engine.journeys.service import JourneyServicer
from engine.platform.rpc.deadlines import HandlerTimeoutInterceptor
from engine.platform.settings import Settings

JOURNEY_SERVICE_NAME = pb.DESCRIPTOR.services_by_name["JourneyService"].full_name
PREFERENCES_SERVICE_NAME = preferences_pb2.DESCRIPTOR.services_by_name[
    "PreferencesService"
].full_name


class PortInUse(RuntimeError):
    pass


@dataclass
class ApiServer:
    server: grpc.aio.Server
    health: health.aio.HealthServicer
    port: int

    async def start(self) -> None:
        await self.server.start()
        for name in ("", JOURNEY_SERVICE_NAME, PREFERENCES_SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    async def stop(self, grace_seconds: float = 5.0) -> None:
        # Tell load balancers first, then let calls in flight finish.
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace_seconds)


def build_server(
    directory: JourneyDirectory,
    address: str,
    preferences: PreferencesServicer | None = None,
    *,
    authenticator: Authenticator,
    settings: Settings | None = None,
) -> ApiServer:
    """A server bound to ``address`` (port 0 picks a free one); PreferencesService
    too when ``preferences`` is given (it needs the database).

    ``authenticator`` checks every call's API key; ``settings`` gives TLS, the
    message size limit and the handler time bound (defaults: plaintext, 4 MiB, 10 s).
    """
    # Without settings: the defaults, not whatever the environment says.
    settings = settings or Settings.model_construct()
    max_bytes = settings.grpc_max_message_bytes
    server = grpc.aio.server(
        # Authentication first: a refused call never reaches the time-bounded handler.
        interceptors=[
            ApiKeyInterceptor(authenticator),
            HandlerTimeoutInterceptor(settings.grpc_call_timeout_seconds),
        ],
        options=[
            ("grpc.max_receive_message_length", max_bytes),
            ("grpc.max_send_message_length", max_bytes),
            # Without this a second process could bind the same port silently.
            ("grpc.so_reuseport", 0),
        ],
    )
    pb_grpc.add_JourneyServiceServicer_to_server(JourneyServicer(directory), server)
    if preferences is not None:
        preferences_pb2_grpc.add_PreferencesServiceServicer_to_server(preferences, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (
            JOURNEY_SERVICE_NAME,
            *((PREFERENCES_SERVICE_NAME,) if preferences is not None else ()),
            health.SERVICE_NAME,
            reflection.SERVICE_NAME,
        ),
        server,
    )
    credentials = server_credentials(settings)  # before binding: a bad file is no port problem
    try:
        if credentials is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, credentials)
    except RuntimeError as err:
        raise PortInUse(f"cannot listen on {address}: {err}") from err
    if port == 0:
        raise PortInUse(f"cannot listen on {address}: the address is in use")
    return ApiServer(server=server, health=health_servicer, port=port)
