"""The dev stack (``aftercare run``): the whole service on embedded defaults, stopped
cleanly on Ctrl-C.

Order matters: the database is migrated and the mail sink listens before the
worker can send; the API accepts calls only once Temporal and the worker are up;
shutdown goes in reverse so no call is accepted that nothing would serve.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from dataclasses import dataclass

from pydantic import SecretStr
from sqlalchemy.engine import make_url

from engine.devstack.dev_key import ensure_dev_key
from engine.devstack.dev_mail_signing import with_dev_bounce_port, with_dev_mail_signing
from engine.devstack.dev_webpush import serve_dev_webpush_fake, with_dev_vapid
from engine.devstack.fcm_fake import serve_fcm_fake
from engine.devstack.mail_sink import MailSink
from engine.devstack.preflight import InstanceLock, PortNeed, check_ports
from engine.devstack.temporal_server import TemporalDevServer
from engine.devstack.twilio_fake import serve_twilio_fake
from engine.devstack.whatsapp_templates import DEV_WHATSAPP_TEMPLATES
from engine.integrations.subscriptions.broker import (
    broker_location,
    ensure_broker_publishing,
    published_event_types,
)
from engine.platform.codec.keys import load_or_create_keyring
from engine.platform.codec.runtime import (
    TOKEN_FILE_NAME,
    converter_for,
    customer_keys_for,
    load_or_create_codec_token,
)
from engine.platform.database.migrate import upgrade_database
from engine.platform.http_server import serve_http
from engine.platform.links.secret import load_or_create_secret
from engine.platform.logging import get_logger
from engine.platform.settings import Settings
from engine.platform.telemetry.runtime import (
    Process,
    instruments_for,
    metrics_port,
    metrics_url,
    port_setting,
    with_dev_stack_ports,
)
from engine.platform.telemetry.tracing import DEV_STACK_SERVICE, process_tracing
from engine.platform.temporal.connection import connect
from engine.processes.api import serving_api
from engine.processes.codec import codec_app
from engine.processes.consumer import consuming
from engine.processes.http import http_app
from engine.processes.worker import WorkerGroup, journey_worker

log = get_logger(__name__)


# The local Twilio fake's account: well-formed, obviously not a real one.
DEV_TWILIO_SID = "AC" + "0" * 32
DEV_TWILIO_TOKEN = "dev-auth-token"


def dev_twilio_settings(base_url: str) -> dict[str, object]:
    return {
        "twilio_account_sid": DEV_TWILIO_SID,
        "twilio_auth_token": SecretStr(DEV_TWILIO_TOKEN),
        "twilio_from_number": "+15005550006",
        "twilio_whatsapp_from": "+15005550006",
        "twilio_api_base_url": base_url,
    }


@dataclass(frozen=True)
class StackAddresses:
    api: str
    temporal: str
    ui: str
    codec: str
    codec_token_file: str
    api_key_file: str
    mail_dir: str
    smtp: str
    sms: str
    http: str
    database: str
    # (process, URL) of each /metrics served.
    metrics: tuple[tuple[str, str], ...] = ()
    push: str = ""
    webpush: str = ""
    bounces: str = ""
    events_broker: str = ""


def with_dev_secrets(settings: Settings) -> Settings:
    """``settings`` with every secret the parts need: the configured ones, else those
    kept under ``state_dir`` (made on first use, readable by the owner only, reused on
    every start so journeys and links survive a restart).

    The dev stack is the only part of the service that makes keys: a deployment's
    processes refuse to start without them (``aftercare secrets init`` makes a set).
    Tests and tools that build the parts as the dev stack does take theirs here.
    """
    configured_keys = settings.codec_keys.get_secret_value() if settings.codec_keys else None
    keyring = load_or_create_keyring(settings.state_dir, configured_keys)
    return settings.model_copy(
        update={
            "secret_key": SecretStr(load_or_create_secret(settings)),
            "codec_keys": SecretStr(keyring.to_config()),
            "codec_token": SecretStr(load_or_create_codec_token(settings)),
        }
    )


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host or "127.0.0.1", int(port)


def banner(addresses: StackAddresses) -> str:
    return "\n".join(
        [
            "",
            "Aftercare is running. Ctrl-C stops every part.",
            f"  gRPC API      {addresses.api}   (reflection and health enabled)",
            f"  API key       {addresses.api_key_file}   (all scopes; the CLI uses it)",
            f"                export AFTERCARE_API_KEY=$(cat {addresses.api_key_file})",
            '                grpcurl -plaintext -H "authorization: Bearer $AFTERCARE_API_KEY"'
            f" -d '{{}}' {addresses.api} aftercare.v1.JourneyService/ListJourneys",
            f"  Temporal UI   {addresses.ui}",
            f"  Temporal      {addresses.temporal}",
            f"  Codec server  {addresses.codec}   (payloads are encrypted: open"
            f" {addresses.codec}/login once with the token in {addresses.codec_token_file},",
            "                then tick 'Include cross-origin credentials' in the UI's codec"
            " settings)",
            f"  Mail sink     smtp://{addresses.smtp} -> {addresses.mail_dir}/*.eml",
            f"  SMS/WhatsApp  {addresses.sms}",
            *([f"  Push          {addresses.push}"] if addresses.push else []),
            *([f"  Web push      {addresses.webpush}"] if addresses.webpush else []),
            *(
                [f"  Bounces       smtp://{addresses.bounces}   (DSN and ARF reports)"]
                if addresses.bounces
                else []
            ),
            f"  HTTP app      {addresses.http}   (Twilio status callbacks, customer links)",
            *(
                [f"  Events out    {addresses.events_broker}   (journey events, RabbitMQ)"]
                if addresses.events_broker
                else []
            ),
            f"  Database      {addresses.database}",
            *_metrics_lines(addresses.metrics),
            "",
            "  Try it:  .venv/bin/aftercare demo",
            "",
        ]
    )


def _metrics_lines(metrics: tuple[tuple[str, str], ...]) -> list[str]:
    return [
        f"  {'Metrics' if index == 0 else '':<12}  {url}   ({process}, Prometheus)"
        for index, (process, url) in enumerate(metrics)
    ]


async def run_stack(settings: Settings) -> None:
    # Metrics served on the dev ports unless the settings chose others (or 0: none).
    settings = with_dev_bounce_port(with_dev_stack_ports(settings))
    state_dir = settings.state_dir
    lock = InstanceLock(state_dir / "run.lock")
    lock.acquire()
    try:
        temporal_host, temporal_port = _host_port(settings.temporal_address)
        check_ports(
            [
                PortNeed("gRPC API", settings.grpc_host, settings.grpc_port, "AFTERCARE_GRPC_PORT"),
                PortNeed(
                    "Temporal frontend",
                    temporal_host,
                    temporal_port,
                    "AFTERCARE_TEMPORAL_ADDRESS",
                ),
                PortNeed(
                    "Temporal UI",
                    temporal_host,
                    settings.temporal_ui_port,
                    "AFTERCARE_TEMPORAL_UI_PORT",
                ),
                PortNeed(
                    "mail sink (SMTP)",
                    settings.smtp_host,
                    settings.smtp_port,
                    "AFTERCARE_SMTP_PORT",
                ),
                PortNeed("HTTP app", settings.http_host, settings.http_port, "AFTERCARE_HTTP_PORT"),
                *(
                    [
                        PortNeed(
                            "bounce endpoint (SMTP)",
                            settings.bounce_smtp_host,
                            settings.bounce_smtp_port,
                            "AFTERCARE_BOUNCE_SMTP_PORT",
                        )
                    ]
                    if settings.bounce_smtp_port
                    else []
                ),
                PortNeed(
                    "codec server", settings.codec_host, settings.codec_port, "AFTERCARE_CODEC_PORT"
                ),
                *(
                    PortNeed(
                        f"{process} metrics",
                        settings.metrics_host,
                        port,
                        f"AFTERCARE_{port_setting(process).upper()}",
                    )
                    for process in Process
                    if (port := metrics_port(settings, process))
                ),
            ]
        )
        # Every part runs in this one process: one service name for their spans.
        async with process_tracing(settings, DEV_STACK_SERVICE):
            await _run_parts(settings, temporal_host, temporal_port)
    finally:
        lock.release()


async def _run_parts(settings: Settings, temporal_host: str, temporal_port: int) -> None:
    state_dir = settings.state_dir
    published_event_types(settings)  # a wrong type fails before anything starts
    log.info("migrating database")
    await asyncio.to_thread(upgrade_database, settings.resolved_database_url)
    api_key_file = await ensure_dev_key(settings)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    configured_token = settings.codec_token is not None
    settings = with_dev_mail_signing(with_dev_secrets(settings))
    sink = MailSink(settings.smtp_host, settings.smtp_port, settings.mail_dir)
    codec_url = f"http://{settings.codec_host}:{settings.codec_port}"
    ui_url = f"http://{temporal_host}:{settings.temporal_ui_port}"
    server = TemporalDevServer(
        ip=temporal_host,
        port=temporal_port,
        ui_port=settings.temporal_ui_port,
        db_file=state_dir / "temporal.db",
        namespace=settings.temporal_namespace,
        log_file=state_dir / "temporal.log",
        # The UI decodes payloads through our codec server, for ops with the token.
        extra_args=["--ui-codec-endpoint", codec_url],
    )
    if "public_base_url" not in settings.model_fields_set:
        # Links in the dev stack's messages (tracked clicks, pages) lead to its own
        # HTTP app, wherever its port was moved.
        settings = settings.model_copy(
            update={"public_base_url": f"http://{settings.http_host}:{settings.http_port}"}
        )
    async with contextlib.AsyncExitStack() as parts:
        await sink.start()
        parts.push_async_callback(sink.stop)
        # One customer key store for the codec server, the client and the worker, so
        # an erasure shows at once in what the UI can decode.
        customer_keys = customer_keys_for(settings)
        parts.push_async_callback(customer_keys.aclose)
        codec = codec_app(settings.model_copy(update={"codec_ui_origin": ui_url}), customer_keys)
        await parts.enter_async_context(serve_http(codec, settings.codec_host, settings.codec_port))
        sms_dir = "(Twilio account configured: real SMS)"
        if not settings.twilio_account_sid:
            # No Twilio account: SMS and WhatsApp go to a local fake of Twilio's API,
            # which keeps each message as a JSON file, like the mail sink.
            fake = await parts.enter_async_context(
                serve_twilio_fake(
                    "127.0.0.1",
                    0,
                    DEV_TWILIO_SID,
                    DEV_TWILIO_TOKEN,
                    folder=state_dir / "sms",
                    whatsapp_windows=True,
                )
            )
            settings = settings.model_copy(update=dev_twilio_settings(fake.base_url))
            if settings.whatsapp_templates_file is None:
                # WhatsApp outside the 24-hour window: the fake accepts these SIDs.
                settings = settings.model_copy(
                    update={"whatsapp_templates_file": DEV_WHATSAPP_TEMPLATES}
                )
            sms_dir = f"{(state_dir / 'sms').resolve()}/*.json"
        push_dir = "(FCM project configured: real push)"
        if not settings.fcm_project_id:
            # No Firebase project: push goes to a local fake of FCM (and of Google's
            # token endpoint), which keeps each message as a JSON file.
            fcm = await parts.enter_async_context(
                serve_fcm_fake("127.0.0.1", 0, state_dir / "push")
            )
            settings = settings.model_copy(
                update={
                    "fcm_project_id": fcm.project_id,
                    "fcm_service_account": SecretStr(fcm.service_account().to_json()),
                    "fcm_api_base_url": fcm.base_url,
                }
            )
            push_dir = f"{(state_dir / 'push').resolve()}/*.json"
        webpush_line = "(VAPID key configured: real web push)"
        if settings.webpush_vapid_private_key is None:
            # No VAPID key: one is made under state_dir, and browsers' subscriptions go
            # to a local fake push service that decrypts and keeps each message.
            settings = with_dev_vapid(settings)
            webpush = await parts.enter_async_context(serve_dev_webpush_fake(state_dir))
            webpush_line = (
                f"POST {webpush.base_url}/subscriptions makes a subscription;"
                f" messages in {(state_dir / 'webpush').resolve()}/*.json"
            )
        log.info("starting temporal dev server", address=server.address)
        await server.start()
        parts.push_async_callback(server.stop)

        # A client per part, as in a deployment: each exports its metrics (the worker's
        # also its activities' and journeys') on its own process's /metrics.
        client = await connect(
            settings,
            data_converter=converter_for(
                settings, customer_keys, instruments=instruments_for(settings, Process.WORKER)
            ),
            process=Process.WORKER,
        )
        worker = await parts.enter_async_context(journey_worker(client, settings))
        # Journey events to the broker's exchange too, when one is configured.
        await ensure_broker_publishing(client, settings)
        worker_task = asyncio.create_task(worker.run(), name="worker")
        parts.push_async_callback(_stop_worker, worker, worker_task)

        # PreferencesService, and a directory that starts journeys with the
        # customer's stored preferences and tells running ones of changes.
        # Erasure destroys keys in the store the client, worker and codec server share.
        api_client = await connect(
            settings,
            data_converter=converter_for(
                settings, customer_keys, instruments=instruments_for(settings, Process.API)
            ),
            process=Process.API,
        )
        await parts.enter_async_context(serving_api(api_client, settings))

        app = await parts.enter_async_context(http_app(settings))
        await parts.enter_async_context(serve_http(app, settings.http_host, settings.http_port))
        if settings.broker_url is not None:
            # Orders from the shop's event bus (docs/integrations.md), as `aftercare consume`.
            await parts.enter_async_context(consuming(api_client, settings))

        print(
            banner(
                StackAddresses(
                    api=settings.grpc_target,
                    temporal=server.address,
                    ui=ui_url,
                    codec=codec_url,
                    codec_token_file=str((state_dir / TOKEN_FILE_NAME).resolve())
                    if not configured_token
                    else "AFTERCARE_CODEC_TOKEN",
                    api_key_file=str(api_key_file.resolve()),
                    mail_dir=str(settings.mail_dir.resolve()),
                    smtp=f"{settings.smtp_host}:{sink.port}",
                    sms=sms_dir,
                    push=push_dir,
                    webpush=webpush_line,
                    bounces=(
                        f"{settings.bounce_smtp_host}:{settings.bounce_smtp_port}"
                        if settings.bounce_smtp_port
                        else ""
                    ),
                    http=settings.public_base_url,
                    events_broker=broker_location(
                        settings.events_broker_url.get_secret_value(), settings.events_exchange
                    )
                    if settings.events_broker_url is not None
                    else "",
                    database=_redacted(settings.resolved_database_url),
                    metrics=tuple(
                        (process.value, url)
                        for process in Process
                        if (url := metrics_url(settings, process))
                    ),
                )
            ),
            flush=True,
        )
        stop_wait = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({stop_wait, worker_task}, return_when=asyncio.FIRST_COMPLETED)
        if worker_task in done and worker_task.exception():
            log.error("worker stopped unexpectedly", error=str(worker_task.exception()))
        stop_wait.cancel()
        log.info("stopping")
    log.info("stopped")


async def _stop_worker(worker: WorkerGroup, task: asyncio.Task[None]) -> None:
    if not task.done():
        await worker.shutdown()
    with contextlib.suppress(Exception, asyncio.CancelledError):
        await task


def _redacted(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)
