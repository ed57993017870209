"""The API process (``aftercare api``): JourneyService, PreferencesService and
OperationsService on one gRPC server, with health and reflection; every call passes
the API-key check (``engine.access.auth``) and is bounded in time
(``engine.platform.rpc.deadlines``); TLS or mutual TLS when configured
(``engine.access.tls``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

import grpc
from aftercare.v1 import (
    devices_pb2,
    devices_pb2_grpc,
    operations_pb2,
    operations_pb2_grpc,
    preferences_pb2,
    preferences_pb2_grpc,
    reports_pb2,
    reports_pb2_grpc,
    subscriptions_pb2,
    subscriptions_pb2_grpc,
)
from aftercare.v1 import journey_pb2 as pb
from aftercare.v1 import journey_pb2_grpc as pb_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from temporalio.client import Client

from engine.access.auth import ApiKeyInterceptor, Authenticator, authenticator_for
from engine.access.tls import server_credentials
from engine.customers.devices.journeys import DeviceChanges
from engine.customers.devices.service import DevicesServicer
from engine.customers.erasure import CustomerEraser
from engine.customers.journey_link import JourneyNotifier, StoredChoices
from engine.customers.preferences import PreferenceStore
from engine.customers.service import PreferencesServicer
from engine.insights.attribution import ConversionAttribution, windows_from_plans
from engine.insights.experiment_stop import ExperimentStopper, experiment_arms
from engine.insights.report_lookup import ReportLookup
from engine.insights.report_query import PlanReports
from engine.insights.report_service import ReportsServicer
from engine.integrations.subscriptions.dispatchers import Dispatchers
from engine.integrations.subscriptions.service import SubscriptionsServicer
from engine.journeys.directory import JourneyDirectory
from engine.journeys.operations.service import OperationsServicer, operations_servicer
from engine.journeys.outbound_events import JourneyEventsOutbox
from engine.journeys.plans import deployment_plans
from engine.journeys.service import JourneyServicer
from engine.messaging.event_subscriptions import EventSubscriptions
from engine.messaging.experiment_decisions import ExperimentDecisions
from engine.messaging.push_devices import PushDevices
from engine.platform.codec.runtime import erasure_marks_for, require_secrets
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.logging import get_logger
from engine.platform.rpc.deadlines import HandlerTimeoutInterceptor
from engine.platform.rpc.metrics import RequestMetricsInterceptor
from engine.platform.settings import Settings
from engine.platform.telemetry.runtime import Process, instruments_for
from engine.platform.telemetry.tracing import (
    API_SERVICE,
    grpc_server_interceptors,
    process_tracing,
)
from engine.platform.temporal.connection import connect
from engine.processes.lifecycle import STARTUP_WAIT, stop_event

log = get_logger(__name__)

JOURNEY_SERVICE_NAME = pb.DESCRIPTOR.services_by_name["JourneyService"].full_name
PREFERENCES_SERVICE_NAME = preferences_pb2.DESCRIPTOR.services_by_name[
    "PreferencesService"
].full_name
OPERATIONS_SERVICE_NAME = operations_pb2.DESCRIPTOR.services_by_name["OperationsService"].full_name
DEVICES_SERVICE_NAME = devices_pb2.DESCRIPTOR.services_by_name["DevicesService"].full_name
REPORTS_SERVICE_NAME = reports_pb2.DESCRIPTOR.services_by_name["ReportsService"].full_name
SUBSCRIPTIONS_SERVICE_NAME = subscriptions_pb2.DESCRIPTOR.services_by_name[
    "SubscriptionsService"
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
        for name in ("", JOURNEY_SERVICE_NAME, PREFERENCES_SERVICE_NAME, OPERATIONS_SERVICE_NAME):
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
    operations: OperationsServicer | None = None,
    authenticator: Authenticator,
    settings: Settings | None = None,
    conversions: ConversionAttribution | None = None,
    devices: DevicesServicer | None = None,
    reports: ReportsServicer | None = None,
    subscriptions: SubscriptionsServicer | None = None,
) -> ApiServer:
    """A server bound to ``address`` (port 0 picks a free one); PreferencesService
    too when ``preferences`` is given, OperationsService when ``operations`` is
    (both need the database).

    ``authenticator`` checks every call's API key; ``settings`` gives TLS, the
    message size limit and the handler time bound (defaults: plaintext, 4 MiB, 10 s).
    """
    # Without settings: the defaults, not whatever the environment says.
    settings = settings or Settings.model_construct()
    max_bytes = settings.grpc_max_message_bytes
    server = grpc.aio.server(
        # Counted first, so refused calls are too; then authentication: a refused
        # call never reaches the time-bounded handler.
        interceptors=[
            # The call's server span (when tracing is on) holds everything below.
            *grpc_server_interceptors(settings),
            RequestMetricsInterceptor(instruments_for(settings, Process.API)),
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
    pb_grpc.add_JourneyServiceServicer_to_server(JourneyServicer(directory, conversions), server)
    if preferences is not None:
        preferences_pb2_grpc.add_PreferencesServiceServicer_to_server(preferences, server)
    if operations is not None:
        operations_pb2_grpc.add_OperationsServiceServicer_to_server(operations, server)
    if devices is not None:
        devices_pb2_grpc.add_DevicesServiceServicer_to_server(devices, server)
    if reports is not None:
        reports_pb2_grpc.add_ReportsServiceServicer_to_server(reports, server)
    if subscriptions is not None:
        subscriptions_pb2_grpc.add_SubscriptionsServiceServicer_to_server(subscriptions, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (
            JOURNEY_SERVICE_NAME,
            *((PREFERENCES_SERVICE_NAME,) if preferences is not None else ()),
            *((OPERATIONS_SERVICE_NAME,) if operations is not None else ()),
            *((DEVICES_SERVICE_NAME,) if devices is not None else ()),
            *((REPORTS_SERVICE_NAME,) if reports is not None else ()),
            *((SUBSCRIPTIONS_SERVICE_NAME,) if subscriptions is not None else ()),
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


@dataclass(frozen=True)
class ApiParts:
    """What the API server serves: the journey directory (starting journeys with the
    customer's stored choices), PreferencesService and what it tells journeys with."""

    directory: JourneyDirectory
    servicer: PreferencesServicer
    store: PreferenceStore
    notifier: JourneyNotifier
    # OperationsService: pauses of sending and bulk operations.
    operations: OperationsServicer
    # Credits purchases to the messages that led to them (engine.insights.attribution).
    conversions: ConversionAttribution | None = None
    # DevicesService: the customers' push devices.
    devices: DevicesServicer | None = None
    # ReportsService: the plan report.
    reports: ReportsServicer | None = None
    # SubscriptionsService: who hears of journey events.
    subscriptions: SubscriptionsServicer | None = None


@asynccontextmanager
async def api_parts(client: Client, settings: Settings) -> AsyncIterator[ApiParts]:
    """Open the database and build the parts; closed when the context ends."""
    engine = create_engine(settings.resolved_database_url)
    sessions = create_session_factory(engine)
    marks = erasure_marks_for(settings)
    try:
        store = PreferenceStore(sessions, marks)
        plans = deployment_plans(settings)
        directory = JourneyDirectory(
            client,
            settings.task_queue,
            StoredChoices(store),
            plans,
            outbox=JourneyEventsOutbox(sessions),
        )
        notifier = JourneyNotifier(store, directory)
        # Erasure runs durably on the worker; the API starts it and waits a while,
        # well inside its own handler bound, for the answer.
        answer_within = timedelta(seconds=min(6.0, settings.grpc_call_timeout_seconds * 0.6))
        eraser = CustomerEraser(client, settings.task_queue, marks, answer_within=answer_within)
        servicer = PreferencesServicer(store, notifier, eraser)
        operations = operations_servicer(client, sessions, plans)
        conversions = ConversionAttribution(sessions, windows_from_plans(plans))
        push_devices = PushDevices(sessions)
        devices = DevicesServicer(
            push_devices, sessions, marks, DeviceChanges(push_devices, notifier, store)
        )
        reports = ReportsServicer(ReportLookup(PlanReports(sessions), lambda: plans.keys()))
        arms = experiment_arms(plans)
        reports.experiments = ExperimentStopper(ExperimentDecisions(sessions), lambda: arms)
        yield ApiParts(
            directory,
            servicer,
            store,
            notifier,
            operations,
            conversions,
            devices=devices,
            reports=reports,
            subscriptions=SubscriptionsServicer(
                EventSubscriptions(sessions), Dispatchers(client, settings.task_queue)
            ),
        )
    finally:
        await engine.dispose()


@dataclass(frozen=True)
class ServingApi:
    """The started API server and the parts behind it."""

    server: ApiServer
    parts: ApiParts


@asynccontextmanager
async def serving_api(
    client: Client,
    settings: Settings,
    *,
    grace_seconds: float = 5.0,
) -> AsyncIterator[ServingApi]:
    """The full API server for ``client`` and ``settings``, started: JourneyService
    with the preference store behind its directory, PreferencesService, the API-key
    check, TLS and limits from ``settings``. Stopped (calls in flight given
    ``grace_seconds``) and its database closed when the context ends.

    """
    async with (
        authenticator_for(settings) as authenticator,
        api_parts(client, settings) as parts,
    ):
        server = build_server(
            parts.directory,
            settings.grpc_target,
            parts.servicer,
            operations=parts.operations,
            authenticator=authenticator,
            settings=settings,
            conversions=parts.conversions,
            devices=parts.devices,
            reports=parts.reports,
            subscriptions=parts.subscriptions,
        )
        await server.start()
        try:
            yield ServingApi(server, parts)
        finally:
            await server.stop(grace_seconds)


async def run_api(settings: Settings) -> None:
    require_secrets(settings)
    stop = stop_event()
    client = await connect(settings, wait=STARTUP_WAIT, process=Process.API)
    # By default erasure destroys keys in the store behind connect()'s codec.
    async with process_tracing(settings, API_SERVICE), serving_api(client, settings):
        log.info(
            "api listening",
            address=settings.grpc_target,
            tls=settings.grpc_tls_cert is not None,
            mutual_tls=settings.grpc_tls_client_ca is not None,
        )
        await stop.wait()
