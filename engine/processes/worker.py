"""The worker process (``aftercare worker``): journey workflows on the main task
queue, and one task queue per channel for the sends, each with its own server-side
rate limit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from types import TracebackType

from temporalio.client import Client
from temporalio.worker import Worker

from activities.channels.base import DeliveryChannel
from activities.channels.email import EmailChannel, LinkBuilder
from activities.channels.push import PushChannel
from activities.channels.sms import SmsChannel
from activities.choose_plan import PlanActivities
from activities.email.dkim_signing import dkim_signer_for
from activities.email.rendering import EmailRenderer
from activities.email.smtp import SmtpConfig, SmtpMailer
from activities.push.fcm import FcmConfig, FcmSender
from activities.push.rendering import PushRenderer
from activities.push.webpush import WebPushConfig, WebPushSender
from activities.rendering.click_tracking import ClickTracker
from activities.send_message import MessageActivities
from activities.sms.rendering import SmsRenderer
from activities.sms.twilio_sender import TwilioConfig, TwilioSender
from activities.sms.whatsapp_templates import WhatsAppTemplates
from activities.supersede import SupersedeActivities
from activities.support_ticket import SupportDeskActivities
from engine.customers.consent import ConsentLedger
from engine.customers.devices.journeys import DeviceChanges
from engine.customers.erasure import ErasureActivities, RecipientHasher
from engine.customers.journey_link import JourneyNotifier
from engine.customers.preferences import PreferenceStore
from engine.integrations.subscriptions.broker import (
    ensure_broker_publishing,
    published_event_types,
)
from engine.journeys.directory import JourneyDirectory
from engine.journeys.plans import deployment_plans
from engine.messaging.backlog import sampling_backlog
from engine.messaging.experiment_decisions import ExperimentDecisions
from engine.messaging.frequency_caps import FrequencyCapStore
from engine.messaging.ledger import MessageLedger
from engine.messaging.pauses import PauseRegistry
from engine.messaging.phone_index import PhoneIndex, phone_index_key
from engine.messaging.push_devices import PushDevices
from engine.messaging.suppressions import SuppressionList
from engine.messaging.whatsapp_windows import WhatsAppWindows
from engine.platform.brand import brand_from_settings
from engine.platform.codec.customer_codec import customer_keys_of
from engine.platform.codec.runtime import customer_keys_for, erasure_marks_for, require_secrets
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.database.erasure_journal import erasure_journal_for
from engine.platform.links.clicks import ClickSigner
from engine.platform.links.secret import secret_key_for
from engine.platform.links.tokens import LinkSigner
from engine.platform.logging import get_logger
from engine.platform.settings import Settings
from engine.platform.telemetry.runtime import Process
from engine.platform.telemetry.tracing import WORKER_SERVICE, process_tracing
from engine.platform.temporal.connection import connect
from engine.platform.temporal.sandbox import workflow_runner, write_bytecode_for
from engine.platform.temporal.versioning import deployment_config, unversioned_build_id
from engine.processes.broker_publishing import broker_publish_activities
from engine.processes.lifecycle import STARTUP_WAIT, stop_event
from engine.processes.webhook_delivery import (
    journey_event_activities,
    webhook_delivery_activities,
)
from workflows.contracts import channel_task_queue
from workflows.erasure import CustomerErasure, ErasureSweep
from workflows.order_journey import OrderJourney
from workflows.vocabulary import Channel
from workflows.webhook_dispatch import WebhookDispatch

log = get_logger(__name__)


class WorkerGroup:
    """Several workers run and stop as one (``async with group`` or ``await group.run()``)."""

    def __init__(self, workers: list[Worker]) -> None:
        self.workers = workers

    async def run(self) -> None:
        await asyncio.gather(*(worker.run() for worker in self.workers))

    async def shutdown(self) -> None:
        await asyncio.gather(*(worker.shutdown() for worker in self.workers))

    async def __aenter__(self) -> WorkerGroup:
        self._stack = AsyncExitStack()
        for worker in self.workers:
            await self._stack.enter_async_context(worker)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.__aexit__(exc_type, exc, tb)


def build_channels(
    settings: Settings,
    mailer: SmtpMailer,
    sender: TwilioSender | None,
    phones: PhoneIndex | None = None,
    *,
    push_devices: PushDevices | None = None,
    fcm: FcmSender | None = None,
    on_device_forgotten: Callable[[str], Awaitable[None]] | None = None,
    webpush: WebPushSender | None = None,
) -> dict[Channel, DeliveryChannel]:
    """The channels ``send_message`` delivers through. With ``phones``, every SMS and
    WhatsApp send notes which customer was texted at the number, so an inbound STOP
    (``/twilio/inbound``) finds them. With ``push_devices``, push goes to the devices
    registered there, through ``fcm`` and, for browsers' subscriptions, ``webpush``
    (neither: push is unavailable, steps fall back); ``on_device_forgotten`` hears of
    a customer one of whose devices FCM unregistered (or its push service dropped)."""
    links = LinkBuilder(
        shop_url=settings.shop_url,
        public_base_url=settings.public_base_url,
        signer=LinkSigner(secret_key_for(settings)),
        clicks=ClickTracker(
            ClickSigner(secret_key_for(settings)),
            settings.public_base_url,
            settings.click_hosts(),
            opens=settings.open_tracking,
            links=settings.click_tracking,
        )
        if settings.click_tracking or settings.open_tracking
        else None,
    )
    brand = brand_from_settings(settings)
    sms_renderer = SmsRenderer(brand)
    channels: dict[Channel, DeliveryChannel] = {
        Channel.EMAIL: EmailChannel(
            EmailRenderer(brand),
            mailer,
            settings.sender_address,
            links,
            bounce_address=settings.bounce_address,
        ),
        Channel.SMS: SmsChannel(sender, sms_renderer, links, phones=phones),
        Channel.WHATSAPP: SmsChannel(
            sender,
            sms_renderer,
            links,
            whatsapp=True,
            whatsapp_enabled=bool(settings.twilio_whatsapp_from),
            phones=phones,
            templates=WhatsAppTemplates.load(settings.whatsapp_templates_file, brand)
            if settings.whatsapp_templates_file
            else None,
            # The windows customers opened, noted by the HTTP app's inbound webhook
            # under the same phone index key.
            windows=WhatsAppWindows(phones) if phones is not None else None,
        ),
    }
    if push_devices is not None:
        channels[Channel.PUSH] = PushChannel(
            fcm, PushRenderer(brand), links, push_devices, on_device_forgotten, web=webpush
        )
    return channels


@asynccontextmanager
async def message_activities(
    settings: Settings, client: Client | None = None
) -> AsyncIterator[MessageActivities]:
    """``send_message`` and what it holds open (database engines, pooled SMTP
    sessions, the Twilio session), closed when the context ends. The worker and
    the send-path benchmark run the same one. With ``client``, a customer whose last
    push device FCM unregistered is told to their running journeys."""
    engine = create_engine(settings.resolved_database_url)
    sessions = create_session_factory(engine)
    marks = erasure_marks_for(settings)
    # A connection of its own for recording what providers accepted: the record must
    # not queue behind other sends' work, since a crash before it means a resend.
    recorder_engine = create_engine(settings.resolved_database_url)
    mailer = SmtpMailer(SmtpConfig.from_settings(settings), dkim=dkim_signer_for(settings))
    twilio = TwilioConfig.from_settings(settings)
    sender = (
        TwilioSender(twilio, timeout_seconds=settings.twilio_timeout_seconds) if twilio else None
    )
    fcm_config = FcmConfig.from_settings(settings)
    fcm = FcmSender(fcm_config) if fcm_config else None
    webpush_config = WebPushConfig.from_settings(settings)
    webpush = WebPushSender(webpush_config) if webpush_config else None
    try:
        # Keyed like the HTTP app's index (engine.processes.http): the same secret.
        phones = PhoneIndex(sessions, phone_index_key(secret_key_for(settings)))
        push_devices = PushDevices(sessions)
        store = PreferenceStore(sessions, marks)
        changes = (
            DeviceChanges(
                push_devices,
                JourneyNotifier(store, JourneyDirectory(client, settings.task_queue)),
                store,
            )
            if client is not None
            else None
        )
        yield MessageActivities(
            MessageLedger(sessions, recorder=create_session_factory(recorder_engine)),
            SuppressionList(sessions),
            ConsentLedger(sessions, marks),
            build_channels(
                settings,
                mailer,
                sender,
                phones=phones,
                push_devices=push_devices,
                fcm=fcm,
                on_device_forgotten=changes.forgotten if changes is not None else None,
                webpush=webpush,
            ),
            FrequencyCapStore(sessions),
            report_grace=timedelta(seconds=settings.delivery_report_grace_seconds),
            pauses=PauseRegistry(
                sessions, cache_ttl=timedelta(seconds=settings.pause_cache_seconds)
            ),
            decisions=ExperimentDecisions(
                sessions, cache_ttl=timedelta(seconds=settings.pause_cache_seconds)
            ),
        )
    finally:
        await mailer.aclose()
        if sender is not None:
            await sender.aclose()
        if fcm is not None:
            await fcm.aclose()
        if webpush is not None:
            await webpush.aclose()
        await engine.dispose()
        await recorder_engine.dispose()


# No payload is kept in external storage here, yet the SDK walks every activation and
# completion for it too, and above 1 each payload sequence gets an asyncio task of its
# own; at 1 the walk runs in line (docs/performance.md). Both workers, ours and the
# baseline's, take it.
EXTERNAL_STORAGE_CONCURRENCY = 1


def _channel_rates(settings: Settings) -> dict[Channel, float | None]:
    return {
        Channel.EMAIL: settings.email_rate_per_second,
        Channel.SMS: settings.sms_rate_per_second,
        Channel.WHATSAPP: settings.whatsapp_rate_per_second,
        Channel.PUSH: settings.push_rate_per_second,
    }


@asynccontextmanager
async def journey_worker(
    client: Client, settings: Settings, *, shutdown_grace: timedelta = timedelta(0)
) -> AsyncIterator[WorkerGroup]:
    """Every worker this service runs, plus the resources their activities use.

    Run it with ``await group.run()`` (or ``async with group``); connections are
    closed when the context ends. On shutdown, activities in flight get
    ``shutdown_grace`` to finish before they are cancelled and handed back to Temporal
    (``aftercare worker`` gives them ``worker_shutdown_grace_seconds``; a send that
    reached its provider still waits for its record: activities.send_message).
    """
    async with (
        message_activities(settings, client) as messages,
        erasure_activities(client, settings) as erasure,
        webhook_delivery_activities(settings) as webhooks,
        journey_event_activities(settings) as journey_events,
        broker_publish_activities(settings) as broker,
        # The worker's backlog gauges, when it serves metrics (its client's runtime).
        sampling_backlog(settings),
    ):
        plans = PlanActivities(deployment_plans(settings))
        support = SupportDeskActivities(settings.support_webhook_url)
        supersede = SupersedeActivities(client)
        write_bytecode_for(OrderJourney)
        workers = [
            Worker(
                client,
                task_queue=settings.task_queue,
                build_id=unversioned_build_id(settings),
                deployment_config=deployment_config(settings),
                graceful_shutdown_timeout=shutdown_grace,
                workflows=[OrderJourney, CustomerErasure, ErasureSweep, WebhookDispatch],
                workflow_runner=workflow_runner(settings),
                max_workflow_task_external_storage_concurrency=EXTERNAL_STORAGE_CONCURRENCY,
                activities=[
                    plans.choose_plan,
                    journey_events.report_journey_events,
                    support.open_support_ticket,
                    supersede.supersede_replenishment,
                    *erasure.all(),
                    webhooks.deliver_journey_events,
                    broker.publish_journey_events,
                ],
            )
        ]
        for channel, rate in _channel_rates(settings).items():
            workers.append(
                Worker(
                    client,
                    task_queue=channel_task_queue(settings.task_queue, channel),
                    build_id=unversioned_build_id(settings),
                    deployment_config=deployment_config(settings),
                    activities=[messages.send_message],
                    graceful_shutdown_timeout=shutdown_grace,
                    # Enforced by the server across every worker of the queue: the
                    # provider's limit holds however many workers run.
                    max_task_queue_activities_per_second=rate,
                )
            )
        yield WorkerGroup(workers)


@asynccontextmanager
async def erasure_activities(
    client: Client, settings: Settings
) -> AsyncIterator[ErasureActivities]:
    """The steps of customer erasures, with the key store the client's codec uses (so a
    destroyed key leaves this worker's cache at once) or one of their own."""
    engine = create_engine(settings.resolved_database_url)
    sessions = create_session_factory(engine)
    marks = erasure_marks_for(settings)
    shared = customer_keys_of(client)
    keys = shared if shared is not None else customer_keys_for(settings)
    journal = erasure_journal_for(settings)
    try:
        yield ErasureActivities(
            journeys=JourneyDirectory(client, settings.task_queue),
            preferences=PreferenceStore(sessions, marks),
            ledger=MessageLedger(sessions),
            keys=keys,
            hasher=RecipientHasher(secret_key_for(settings)),
            sessions=sessions,
            journal=journal,
            marks=marks,
        )
    finally:
        await journal.aclose()
        if shared is None:
            await keys.aclose()
        await engine.dispose()


async def run_worker(settings: Settings) -> None:
    """``aftercare worker``: refuses to start without the deployment's secrets; on
    SIGTERM or SIGINT stops polling at once, lets the activities in flight finish for
    up to ``worker_shutdown_grace_seconds`` (then cancels them, and Temporal retries
    them elsewhere), and exits."""
    require_secrets(settings)
    published_event_types(settings)  # before waiting for Temporal: a wrong type fails at once
    stop = stop_event()
    client = await connect(settings, wait=STARTUP_WAIT, process=Process.WORKER)
    grace = timedelta(seconds=settings.worker_shutdown_grace_seconds)
    async with (
        process_tracing(settings, WORKER_SERVICE),
        journey_worker(client, settings, shutdown_grace=grace) as group,
    ):
        # Journey events to the broker's exchange, when one is configured.
        await ensure_broker_publishing(client, settings)
        running = asyncio.create_task(group.run(), name="workers")
        stopping = asyncio.create_task(stop.wait())
        log.info("worker running", task_queue=settings.task_queue)
        await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        log.info(
            "worker stopping",
            grace_seconds=settings.worker_shutdown_grace_seconds,
            unexpected=running.done(),
        )
        # Every worker of the group at once: their graces run side by side.
        await group.shutdown()
        await running  # raises what made a worker fail, if one did
        log.info("worker stopped")
