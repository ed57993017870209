"""The HTTP process (``aftercare http``): health check, Twilio's status callbacks and
inbound messages, and the links customers click (unsubscribe, preference centre,
feedback).

Everything here is reachable without credentials, so every POST has a body cap
(Starlette's ``max_body_size``: 413 before the form is parsed), sized to what the
genuine requests need with room to spare, and the link pages share one rate limit
per client (``AFTERCARE_LINK_RATE_LIMIT``; see ``engine.platform.http_limits`` for
the client's address behind a proxy). Twilio's endpoints are not rate-limited:
they are signed, and a burst of genuine callbacks must not be refused.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from engine.access.api_keys import ApiKeyStore
from engine.access.auth import Authenticator
from engine.access.report_keys import reports_key_check
from engine.customers.bounces_and_complaints import MailReports
from engine.customers.consent import ConsentLedger
from engine.customers.consent_changes import ConsentChanged
from engine.customers.feedback_responses import FeedbackResponses
from engine.customers.inbound_sms import INBOUND_PATH, InboundSms
from engine.customers.journey_link import JourneyNotifier, StoredChoices
from engine.customers.mail_report_webhook import (
    MAIL_REPORT_MAX_BODY_BYTES,
    MAIL_REPORTS_PATH,
    MailReportWebhook,
)
from engine.customers.pages.common import Pages, SameOrigin
from engine.customers.pages.feedback import (
    FEEDBACK_MAX_BODY_BYTES,
    FEEDBACK_PATH,
    FeedbackPage,
    JourneyEvents,
)
from engine.customers.pages.preference_centre import (
    PREFERENCES_MAX_BODY_BYTES,
    PREFERENCES_PATH,
    PreferenceCentre,
)
from engine.customers.pages.unsubscribe import (
    UNSUBSCRIBE_MAX_BODY_BYTES,
    UNSUBSCRIBE_PATH,
    UnsubscribeLinks,
)
from engine.customers.preferences import PreferenceStore
from engine.insights.click_redirects import CLICK_PATH, OPEN_PATH, ClickRedirects, OpenPixels
from engine.insights.report_lookup import ReportLookup
from engine.insights.report_page import ReportPages
from engine.insights.report_query import PlanReports
from engine.integrations.intake import ConnectingIntake
from engine.integrations.shopify.deliveries import WebhookDeliveries
from engine.integrations.shopify.signature import ShopSecrets
from engine.integrations.shopify.webhooks import (
    SHOPIFY_MAX_BODY_BYTES,
    SHOPIFY_PATH,
    ShopifyWebhooks,
)
from engine.journeys.directory import JourneyDirectory
from engine.journeys.outbound_events import JourneyEventsOutbox
from engine.journeys.plans import deployment_plans
from engine.messaging.delivery_reports import STATUS_PATH, DeliveryReports, UndeliveredCallback
from engine.messaging.engagement import record_unsubscribe
from engine.messaging.ledger import MessageLedger
from engine.messaging.phone_index import PhoneIndex, phone_index_key
from engine.messaging.suppressions import SuppressionList
from engine.messaging.whatsapp_windows import WhatsAppWindows
from engine.platform.brand import Brand, brand_from_settings, default_brand
from engine.platform.codec.runtime import erasure_marks_for, require_secrets
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.database.erasure_marks import ErasureMarks
from engine.platform.http_limits import RateLimit, Throttled, trusting_proxies
from engine.platform.http_metrics import RequestMetrics
from engine.platform.http_server import serve_http
from engine.platform.links.clicks import ClickSigner
from engine.platform.links.secret import secret_key_for
from engine.platform.links.tokens import LinkSigner
from engine.platform.logging import get_logger
from engine.platform.secret_values import MissingSecret
from engine.platform.settings import Settings
from engine.platform.telemetry.runtime import Instruments, Process, instruments_for
from engine.platform.telemetry.tracing import HTTP_SERVICE, process_tracing
from engine.platform.temporal.connection import connect
from engine.platform.twilio_signature import MAX_BODY_BYTES as TWILIO_MAX_BODY_BYTES
from engine.platform.twilio_signature import TwilioSignature
from engine.processes.lifecycle import stop_event
from workflows.contracts import UndeliveredMessage
from workflows.orders import OrderEvent
from workflows.overrides import CustomerOverrides

log = get_logger(__name__)


def build_http_app(
    *,
    ledger: MessageLedger,
    suppressions: SuppressionList,
    consent: ConsentLedger,
    signer: LinkSigner,
    twilio_auth_token: str | None,
    public_base_url: str,
    brand: Brand | None = None,
    journeys: JourneyEvents | None = None,
    feedback_responses: FeedbackResponses | None = None,
    phones: PhoneIndex | None = None,
    on_consent_changed: ConsentChanged | None = None,
    link_rate_limit: str = "60/minute",
    trusted_proxies: Sequence[str] = (),
    metrics: Instruments | None = None,
    shopify: ShopifyWebhooks | None = None,
    clicks: ClickRedirects | None = None,
    opens: OpenPixels | None = None,
    mail_reports: MailReportWebhook | None = None,
    report_pages: ReportPages | None = None,
    on_undelivered: UndeliveredCallback | None = None,
) -> Starlette:
    """The app. The feedback page needs ``journeys`` and ``feedback_responses``, and
    inbound messages need ``phones``; without them those routes are not served.
    ``on_consent_changed(customer_id)`` runs after a page or a text changed consent.
    ``link_rate_limit`` (requests per client, all link pages together) and
    ``trusted_proxies`` are the settings of the same names; ``metrics`` count and
    time every request (engine.platform.http_metrics)."""
    signature = TwilioSignature(twilio_auth_token, public_base_url)
    # One budget for every link page: a client guessing tokens gains nothing by
    # spreading its guesses over them.
    links = [Middleware(Throttled, limit=RateLimit(link_rate_limit, "link pages"))]
    base_url = public_base_url.rstrip("/")
    reports = DeliveryReports(ledger, suppressions, signature, on_undelivered)
    unsubscribe = UnsubscribeLinks(
        consent,
        signer,
        on_consent_changed,
        # The opt-out, credited to the journey's message for the report.
        on_unsubscribed=lambda journey_id: record_unsubscribe(ledger.sessions, journey_id),
    )
    pages = Pages(brand or default_brand())
    same_origin = SameOrigin(base_url)
    preferences = PreferenceCentre(consent, signer, pages, same_origin, on_consent_changed)

    routes = [
        Route("/healthz", _healthz, methods=["GET"]),
        Route(STATUS_PATH, reports.receive, methods=["POST"], max_body_size=TWILIO_MAX_BODY_BYTES),
        Route(UNSUBSCRIBE_PATH, unsubscribe.confirm_page, methods=["GET"], middleware=links),
        Route(
            UNSUBSCRIBE_PATH,
            unsubscribe.unsubscribe,
            methods=["POST"],
            middleware=links,
            max_body_size=UNSUBSCRIBE_MAX_BODY_BYTES,
        ),
        Route(PREFERENCES_PATH, preferences.show, methods=["GET"], middleware=links),
        Route(
            PREFERENCES_PATH,
            preferences.save,
            methods=["POST"],
            middleware=links,
            max_body_size=PREFERENCES_MAX_BODY_BYTES,
        ),
    ]
    if journeys is not None and feedback_responses is not None:
        feedback = FeedbackPage(journeys, feedback_responses, signer, pages, same_origin)
        routes.append(Route(FEEDBACK_PATH, feedback.show, methods=["GET"], middleware=links))
        routes.append(
            Route(
                FEEDBACK_PATH,
                feedback.answer,
                methods=["POST"],
                middleware=links,
                max_body_size=FEEDBACK_MAX_BODY_BYTES,
            )
        )
    if phones is not None:
        inbound = InboundSms(
            signature=signature,
            consent=consent,
            phones=phones,
            brand=pages.brand,
            on_consent_changed=on_consent_changed,
            windows=WhatsAppWindows(phones),
        )
        routes.append(
            Route(
                INBOUND_PATH,
                inbound.receive,
                methods=["POST"],
                max_body_size=TWILIO_MAX_BODY_BYTES,
            )
        )
    if clicks is not None:
        # Tracked links (GET; Starlette answers HEAD too, which counts as a scanner's).
        routes.append(Route(CLICK_PATH, clicks.follow, methods=["GET"], middleware=links))
    if opens is not None:
        routes.append(Route(OPEN_PATH, opens.opened, methods=["GET"], middleware=links))
    if shopify is not None:
        # Signed by Shopify, like Twilio's callbacks: not rate-limited.
        routes.append(
            Route(
                SHOPIFY_PATH,
                shopify.receive,
                methods=["POST"],
                max_body_size=SHOPIFY_MAX_BODY_BYTES,
            )
        )
    if mail_reports is not None:
        # Bounces and complaints a provider posts (bearer token): not rate-limited.
        routes.append(
            Route(
                MAIL_REPORTS_PATH,
                mail_reports.receive,
                methods=["POST"],
                max_body_size=MAIL_REPORT_MAX_BODY_BYTES,
            )
        )
    if report_pages is not None:
        # The plan report for staff holding a reports:read key (its own sign-in).
        routes.extend(report_pages.routes())
    counting = Middleware(RequestMetrics, routes=routes, instruments=metrics or Instruments.noop())
    return Starlette(routes=routes, middleware=[counting, *trusting_proxies(trusted_proxies)])


async def _healthz(_request: Request) -> Response:
    return PlainTextResponse("ok")


class ConnectingJourneys:
    """The HTTP app's way to Temporal: a ``JourneyDirectory`` made at first use.

    The app also takes Twilio's callbacks and the unsubscribe and preference links,
    none of which needs Temporal: connecting lazily lets it start, and keep serving
    them, while Temporal is unreachable. A failed connection surfaces as
    ConnectionError (the feedback page asks to retry; consent changes are recorded
    and only the journeys' notification is missed) and the next call tries again.
    """

    def __init__(self, make: Callable[[], Awaitable[JourneyDirectory]]) -> None:
        self._make = make
        self._directory: JourneyDirectory | None = None
        self._lock = asyncio.Lock()

    async def directory(self) -> JourneyDirectory:
        async with self._lock:
            if self._directory is None:
                self._directory = await self._make()
            return self._directory

    async def record_event(self, order_id: str, event: OrderEvent) -> str:
        """``JourneyDirectory.record_event`` (what the feedback page needs)."""
        return await (await self.directory()).record_event(order_id, event)

    async def signal_preferences(self, customer_id: str, overrides: CustomerOverrides) -> int:
        """``JourneyDirectory.signal_preferences`` (the pages' consent changes)."""
        return await (await self.directory()).signal_preferences(customer_id, overrides)

    async def report_undelivered(self, journey_id: str, report: UndeliveredMessage) -> None:
        """``JourneyDirectory.report_undelivered`` (Twilio's undelivered reports)."""
        await (await self.directory()).report_undelivered(journey_id, report)


def shopify_webhooks(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], marks: ErasureMarks
) -> ShopifyWebhooks | None:
    """Shopify's webhook endpoint when shops are configured
    (``AFTERCARE_SHOPIFY_WEBHOOK_SECRETS``): orders start journeys as the API starts
    them, with the customer's stored choices and the deployment's plans."""
    if settings.shopify_webhook_secrets is None:
        return None
    try:
        secrets = ShopSecrets.parse(settings.shopify_webhook_secrets.get_secret_value())
    except ValueError as err:
        # Stops the process naming the setting, never showing its value.
        raise MissingSecret(f"AFTERCARE_SHOPIFY_WEBHOOK_SECRETS: {err}") from None

    async def directory() -> JourneyDirectory:
        client = await connect(settings, process=Process.HTTP)
        choices = StoredChoices(PreferenceStore(sessions, marks))
        return JourneyDirectory(
            client,
            settings.task_queue,
            choices,
            deployment_plans(settings),
            outbox=JourneyEventsOutbox(sessions),
        )

    return ShopifyWebhooks(secrets, ConnectingIntake(directory), WebhookDeliveries(sessions))


def report_pages(settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> ReportPages:
    """The plan report's pages: the deployment's plans, read from the database, shown
    to API keys with the reports:read scope."""
    plans = frozenset(deployment_plans(settings))
    authenticator = Authenticator(
        ApiKeyStore(sessions), cache_seconds=settings.api_key_cache_seconds
    )
    return ReportPages(
        ReportLookup(PlanReports(sessions), lambda: plans),
        reports_key_check(authenticator),
        secret=secret_key_for(settings),
        brand=brand_from_settings(settings),
        secure_cookies=settings.public_base_url.startswith("https://"),
    )


@asynccontextmanager
async def http_app(settings: Settings) -> AsyncIterator[Starlette]:
    """The app wired to the service's database and (lazily) to Temporal."""
    engine = create_engine(settings.resolved_database_url)
    sessions = create_session_factory(engine)
    token = settings.twilio_auth_token
    secret = secret_key_for(settings)
    marks = erasure_marks_for(settings)

    async def directory() -> JourneyDirectory:
        return JourneyDirectory(
            await connect(settings, process=Process.HTTP),
            settings.task_queue,
            outbox=JourneyEventsOutbox(sessions),
        )

    journeys = ConnectingJourneys(directory)
    # Consent changed on the pages or by text reaches the customer's running
    # journeys at once.
    notifier = JourneyNotifier(PreferenceStore(sessions, marks), journeys)
    ledger = MessageLedger(sessions)
    clicks = (
        ClickRedirects(ledger, ClickSigner(secret), settings.click_hosts())
        if settings.click_tracking
        else None
    )
    reports = MailReports(
        sessions,
        SuppressionList(sessions),
        ConsentLedger(sessions, marks),
        bounce_address=settings.bounce_address,
        on_consent_changed=notifier.notify_preferences_changed,
    )
    feedback_token = settings.mail_feedback_token
    try:
        async with bounce_endpoint(settings, reports):
            yield build_http_app(
                ledger=ledger,
                suppressions=SuppressionList(sessions),
                consent=ConsentLedger(sessions, marks),
                signer=LinkSigner(secret),
                twilio_auth_token=token.get_secret_value() if token else None,
                public_base_url=settings.public_base_url,
                brand=brand_from_settings(settings),
                journeys=journeys,
                feedback_responses=FeedbackResponses(sessions, marks),
                phones=PhoneIndex(sessions, phone_index_key(secret)),
                on_consent_changed=notifier.notify_preferences_changed,
                link_rate_limit=settings.link_rate_limit,
                trusted_proxies=settings.trusted_proxies,
                metrics=instruments_for(settings, Process.HTTP),
                shopify=shopify_webhooks(settings, sessions, marks),
                clicks=clicks,
                opens=OpenPixels(ledger, ClickSigner(secret)) if settings.open_tracking else None,
                report_pages=report_pages(settings, sessions),
                # A text reported undelivered: its journey sends the next channel.
                on_undelivered=journeys.report_undelivered,
                mail_reports=(
                    MailReportWebhook(reports, feedback_token.get_secret_value())
                    if feedback_token is not None
                    else None
                ),
            )
    finally:
        await engine.dispose()


@asynccontextmanager
async def bounce_endpoint(settings: Settings, reports: MailReports) -> AsyncIterator[None]:
    """The inbound SMTP endpoint for bounces and complaints while the app runs, when
    ``AFTERCARE_BOUNCE_SMTP_PORT`` is set."""
    if not settings.bounce_smtp_port:
        yield
        return
    try:
        # aiosmtpd is imported only when the endpoint is on.
        from engine.customers.bounce_mailbox import BounceMailbox
    except ImportError as err:
        raise RuntimeError(
            "AFTERCARE_BOUNCE_SMTP_PORT is set, but aiosmtpd is not installed"
        ) from err
    async with BounceMailbox(reports, settings.bounce_smtp_host, settings.bounce_smtp_port):
        yield


async def run_http(settings: Settings) -> None:
    # The codec keys too: the app tells journeys of events and consent through Temporal.
    require_secrets(settings)
    stop = stop_event()
    async with (
        process_tracing(settings, HTTP_SERVICE),
        http_app(settings) as app,
        serve_http(app, settings.http_host, settings.http_port),
    ):
        log.info("http app listening", host=settings.http_host, port=settings.http_port)
        await stop.wait()
