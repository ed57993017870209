"""Table definitions. Alembic migrations under ``migrations/versions`` create them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Stable constraint names make migrations reproducible on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class MessageStatus:
    """Ledger states: claimed -> sent | failed | skipped."""

    CLAIMED = "claimed"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"


class Message(Base):
    """One row per message a journey step decided to send (the message ledger).

    ``idempotency_key`` is derived from the journey (workflow) id, the step and
    its iteration, never from the run id, so retries and continue-as-new map to
    the same row and a message is never sent twice.
    """

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(300), unique=True)
    journey_id: Mapped[str] = mapped_column(String(200), index=True)
    step: Mapped[str] = mapped_column(String(100))
    iteration: Mapped[int] = mapped_column(Integer, default=0)
    channel: Mapped[str] = mapped_column(String(20))
    template: Mapped[str] = mapped_column(String(100))
    recipient: Mapped[str] = mapped_column(String(320))
    status: Mapped[str] = mapped_column(String(20), index=True)
    # Twilio's message SID or the email's Message-ID; status callbacks look rows up by it.
    provider_message_id: Mapped[str | None] = mapped_column(String(300), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # The send attempt holding a claimed row, and until when: another attempt of the
    # same message waits while the lease lives, and takes the row over once it ran out.
    claim_owner: Mapped[str | None] = mapped_column(String(200))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # What the provider reported after the send (queued, sent, delivered,
    # undelivered, failed), and when that report arrived.
    delivery_status: Mapped[str | None] = mapped_column(String(20))
    delivery_updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # What the report groups by (None on rows from before they were kept): the
    # journey's plan label ("default@v1"), the step's category, whose journey it is,
    # and the experiment arm the customer was assigned to on this step, if any.
    plan: Mapped[str | None] = mapped_column(String(100), index=True)
    category: Mapped[str | None] = mapped_column(String(20))
    customer_id: Mapped[str | None] = mapped_column(String(128), index=True)
    experiment: Mapped[str | None] = mapped_column(String(100))
    variant: Mapped[str | None] = mapped_column(String(40))


class SuppressedAddress(Base):
    """An address no message may go to on one channel (unsubscribed, unreachable).

    Addresses are stored normalised (see ``engine.messaging.suppressions``), so the
    unique constraint makes one row per channel and address.
    """

    __tablename__ = "suppressions"
    __table_args__ = (UniqueConstraint("channel", "address"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(20))
    address: Mapped[str] = mapped_column(String(320))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class CustomerKeyRecord(Base):
    """A customer's data key (crypto-shredding, see ``engine.platform.codec.customer_keys``).

    ``wrapped_key`` is the key AES-GCM-encrypted under the payload keyring's master
    key ``master_key_id``, so a dump of this table alone decrypts nothing. ``key_id``
    is random and travels in payload metadata: it must never reveal the customer.
    Deleting the row is what makes the customer's history unreadable.
    """

    __tablename__ = "customer_keys"

    key_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(128), unique=True)
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    master_key_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class JourneyOwnerRecord(Base):
    """Whose journey a workflow id is: the codec encrypts its payloads under that
    customer's data key. Continue-as-new keeps the workflow id, so one row a journey."""

    __tablename__ = "journey_owners"

    workflow_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ConsentRecord(Base):
    """One consent decision of a customer, as it was recorded (append-only audit trail).

    ``channel`` None means every channel, ``category`` None every category that
    needs consent (all but transactional and support). Rows are never updated or
    deleted: the newest matching row is the customer's current decision (see
    ``engine.customers.consent``).
    """

    __tablename__ = "consent_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    channel: Mapped[str | None] = mapped_column(String(20))
    category: Mapped[str | None] = mapped_column(String(20))
    granted: Mapped[bool] = mapped_column(Boolean)
    # Where the decision came from: "one_click", "unsubscribe_page", "api"...
    source: Mapped[str] = mapped_column(String(40))
    recorded_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    # The API key (its public id, api_keys.id) whose call recorded the decision;
    # None for what the customer did on our pages or by text. No foreign key: the
    # trail outlives whatever happens to the key.
    api_key_id: Mapped[str | None] = mapped_column(String(32))


class UsedLinkToken(Base):
    """A signed link whose one-time action was done; keyed by the token's SHA-256 (hex),
    so the table never holds a usable token."""

    __tablename__ = "used_link_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    used_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ApiKeyRecord(Base):
    """A key of the gRPC API (see ``engine.access.api_keys``). The secret part of
    the key is never stored: ``secret_hash`` is its SHA-256, bound to the id."""

    __tablename__ = "api_keys"

    # The public part of the key (``ak_<id>_<secret>``): what logs and the CLI show.
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    secret_hash: Mapped[str] = mapped_column(String(64))
    # Space-separated scope names, e.g. "events:write journeys:read".
    scopes: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class CustomerPreferenceRecord(Base):
    """How a customer wants to be messaged, beyond consent (which lives in
    ``consent_events``). A None column means "as the order and the plan say".

    ``revision`` grows with every change the customer's journeys are told about
    (see ``engine.customers.preferences``), so a journey can tell a newer
    notification from an older one that overtook it.
    """

    __tablename__ = "customer_preferences"

    customer_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    locale: Mapped[str | None] = mapped_column(String(35))
    timezone: Mapped[str | None] = mapped_column(String(64))
    # Quiet hours override, local "HH:MM"; both set or both None.
    quiet_start: Mapped[str | None] = mapped_column(String(5))
    quiet_end: Mapped[str | None] = mapped_column(String(5))
    preferred_channel: Mapped[str | None] = mapped_column(String(20))
    revision: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ErasedCustomer(Base):
    """That a customer was erased (GDPR / CCPA), and when; keyed by a keyed hash of
    the customer id (``engine.platform.database.erasure_marks``), so the table lists
    no id yet still recognises one when a late or replayed request tries to write
    about that customer again."""

    __tablename__ = "erased_customers"

    customer_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    erased_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class CapSlotState:
    """Frequency-cap slots: held (waiting for its instant) -> reserved -> sent."""

    HELD = "held"
    RESERVED = "reserved"
    SENT = "sent"


class CappedSend(Base):
    """One message that counts against a customer's frequency cap (see
    ``engine.messaging.frequency_caps``): sent, reserved while it is being delivered,
    or held for the slot it was deferred to.

    ``send_key`` is journey/step/iteration (no channel: a step that falls back to
    another channel is still one message), so a retried send finds its own row.
    """

    __tablename__ = "capped_sends"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    send_key: Mapped[str] = mapped_column(String(300), unique=True)
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    category: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(10))
    priority: Mapped[int] = mapped_column(Integer)
    # The instant it counts at: when reserved (sent), or the slot a hold waits for.
    slot_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class PhoneCustomer(Base):
    """That a customer was texted at a phone number, so an inbound STOP / START from
    that number finds them (see ``engine.messaging.phone_index``).

    The number is stored only as a keyed hash (HMAC-SHA256 under the service's
    secret): the table alone does not reveal anyone's number. A shared number (a
    household phone) has one row per customer.
    """

    __tablename__ = "phone_customers"

    phone_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(128), primary_key=True, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class FeedbackResponse(Base):
    """One answer given on the feedback page (NPS score and comment), keyed by the
    SHA-256 of the link's token: one answer per link, kept even when the journey
    it was meant for had already ended (``delivered`` False)."""

    __tablename__ = "feedback_responses"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    journey_id: Mapped[str] = mapped_column(String(200))
    score: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str] = mapped_column(Text)
    # Whether the journey received it as a feedback event.
    delivered: Mapped[bool] = mapped_column(Boolean)
    recorded_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class SendPause(Base):
    """An operator's pause of sending in one scope (plan, step, category or
    template; see ``engine.messaging.pauses``). Kept after it is lifted, as the
    record of who stopped what, when and why.

    ``active_key`` names the scope while the pause is in force and is NULL once it
    is lifted: its unique constraint keeps one active pause per scope even when two
    operators pause the same thing at once (NULLs never collide).
    """

    __tablename__ = "send_pauses"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    scope_kind: Mapped[str] = mapped_column(String(20))
    scope_value: Mapped[str] = mapped_column(String(100))
    include_transactional: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The API key (its public id) that paused or resumed; None from the CLI on the host.
    created_by: Mapped[str | None] = mapped_column(String(32))
    resumed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resumed_by: Mapped[str | None] = mapped_column(String(32))
    active_key: Mapped[str | None] = mapped_column(String(160), unique=True)


class EngagementKind:
    """What happened to a sent message, as the engagement table records it."""

    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    BOUNCED = "bounced"
    OPENED = "opened"
    CLICKED = "clicked"
    UNSUBSCRIBED = "unsubscribed"
    COMPLAINED = "complained"


class EngagementEvent(Base):
    """One outcome of one ledger message: a provider's delivery report, a bounce,
    an open, a click on a tracked link, an unsubscribe or a complaint it caused.

    ``automated`` marks what was most likely not a person (a mail scanner fetching
    every link, a privacy proxy loading the pixel): kept, never counted as a click.
    ``detail`` is a fixed-vocabulary or non-personal value (the link's name, the
    provider's error code), never an address.
    """

    __tablename__ = "engagement_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20), index=True)
    automated: Mapped[bool] = mapped_column(Boolean, default=False)
    detail: Mapped[str | None] = mapped_column(String(200))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class Conversion(Base):
    """A purchase attributed to the message that led to it: the customer's next
    order (``order_id``, attributed once) within the plan's window after a click on
    the message or after its delivery (``attributed_by``)."""

    __tablename__ = "conversions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(String(128), unique=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    revenue_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    # "click", "delivery" or "holdout" (a held-out customer's row: engine.insights.attribution)
    attributed_by: Mapped[str] = mapped_column(String(20))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class ExperimentDecision(Base):
    """An experiment stopped with a winner: from ``decided_at`` on, every send of
    the experiment's step uses ``winner`` (journeys asleep included)."""

    __tablename__ = "experiment_decisions"

    experiment: Mapped[str] = mapped_column(String(100), primary_key=True)
    winner: Mapped[str] = mapped_column(String(40))
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    decided_by: Mapped[str | None] = mapped_column(String(32))


class PushDevice(Base):
    """A device (app install or browser) of a customer that receives push messages
    through Firebase Cloud Messaging. A registration token belongs to one install, so
    registering it again for another customer moves it (the app changed hands).

    ``token`` is what FCM needs to reach the device, kept as given until the customer
    removes the device, FCM reports it unregistered, or the customer is erased;
    ``token_hash`` (SHA-256) is how the API, logs and the per-device record name it.

    A browser's web push subscription is a row too: ``token`` holds its endpoint URL
    and ``web_push_p256dh`` / ``web_push_auth`` (base64url) the keys its messages are
    encrypted to, kept and dropped with the row like a token (both NULL for FCM).
    """

    __tablename__ = "push_devices"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    token: Mapped[str] = mapped_column(Text)
    platform: Mapped[str] = mapped_column(String(10))
    registered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    web_push_p256dh: Mapped[str | None] = mapped_column(String(100), nullable=True)
    web_push_auth: Mapped[str | None] = mapped_column(String(40), nullable=True)


class PushDelivery(Base):
    """One push message (a ledger row's key) handed to FCM or a web push service for
    one device: a retry of the send skips the devices already reached, so no device
    gets it twice."""

    __tablename__ = "push_deliveries"

    ledger_key: Mapped[str] = mapped_column(String(300), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    # FCM's name for the message ("projects/<project>/messages/<id>").
    fcm_name: Mapped[str] = mapped_column(String(300))
    sent_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class WhatsAppWindow(Base):
    """When a number last wrote to us on WhatsApp: WhatsApp accepts free-form text to
    it for 24 hours after that (the customer-service window), templates otherwise.
    The number is kept only as the phone index's keyed hash."""

    __tablename__ = "whatsapp_windows"

    phone_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_inbound_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ShopifyWebhookDelivery(Base):
    """A Shopify webhook delivery acted on (``X-Shopify-Webhook-Id``): a retry of it
    is answered at once and changes nothing."""

    __tablename__ = "shopify_webhook_deliveries"

    webhook_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    shop_domain: Mapped[str] = mapped_column(String(255))
    topic: Mapped[str] = mapped_column(String(100))
    outcome: Mapped[str] = mapped_column(String(40))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class JourneyEventRecord(Base):
    """A journey event for the outbound subscribers, written in the transaction of
    the fact it reports (engine/messaging/journey_events.py). ``id`` is the global
    order every subscriber is served in; ``event_id`` is derived from the fact, so
    recording it twice keeps one row. ``data`` holds no personal data; ``personal``
    (JSON, or None) is sent only to subscriptions that ask for it."""

    __tablename__ = "journey_event_outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(300), unique=True)
    journey_id: Mapped[str] = mapped_column(String(200), index=True)
    type: Mapped[str] = mapped_column(String(40))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    data: Mapped[str] = mapped_column(Text)
    personal: Mapped[str | None] = mapped_column(Text)
    # When the row was written (the writer's clock): a gap in ``id`` before a row
    # recorded long enough ago is a rolled-back insert, not one still committing.
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class EventSubscription(Base):
    """A subscriber's endpoint for journey events, signed with ``secret`` (Standard
    Webhooks, ``whsec_`` + base64). ``event_types`` is a comma list or ``*``."""

    __tablename__ = "event_subscriptions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str] = mapped_column(String(200))
    event_types: Mapped[str] = mapped_column(String(1000))
    include_personal_data: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    removed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The outbox id its dispatcher has handled everything up to: the outbox is
    # pruned behind the lowest of the active subscriptions'.
    delivered_through: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
