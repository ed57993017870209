"""Runtime configuration, read from ``AFTERCARE_*`` environment variables and ``.env``."""

from __future__ import annotations

from functools import lru_cache
from ipaddress import ip_address, ip_network
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from limits import parse as parse_rate_limit
from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from engine.platform.secret_values import SecretFileSource, secret_problem
from engine.platform.vapid import VapidKeyError, load_private_key, subject_problem
from workflows.plans.catalogue import FrequencyCaps, parse_frequency_caps

# Everything the embedded dev stack writes (Temporal database, SQLite, mail sink,
# lock file) lives under one folder so a user can inspect or delete it at once.
DEFAULT_STATE_DIR = Path(".aftercare")

SmtpSecurity = Literal["none", "starttls", "tls"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="AFTERCARE_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        # A refused value is named, never shown: it may be a secret.
        hide_input_in_errors=True,
    )

    state_dir: Path = DEFAULT_STATE_DIR

    # Temporal
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    task_queue: str = "aftercare-journeys"
    temporal_ui_port: int = 8233
    # Run journeys in the SDK's sandbox, which refuses non-deterministic calls at
    # run time. Off trades that net for worker CPU (see engine/platform/temporal/sandbox.py); the
    # replay tests run sandboxed either way.
    workflow_sandbox: bool = True
    # Worker versioning (engine/platform/temporal/versioning.py; docs/safe-changes.md):
    # with a deployment name, workers join that Temporal Worker Deployment as version
    # build_id (default: the hash of the code, engine/platform/temporal/build_id.py) and
    # journeys are pinned to the version that started them. Unset: unversioned workers.
    deployment_name: str | None = None
    build_id: str | None = None
    # A secured Temporal (a self-hosted cluster behind TLS, Temporal Cloud), read by
    # engine/platform/temporal/tls.py. TLS unset means "on as soon as any TLS setting or
    # an API key is given", so a key never crosses the network in clear by omission;
    # false forces plaintext. The CA file replaces the system's roots; the server name
    # is what the certificate must carry when the address does not (an IP, a proxy).
    # The client certificate and key (mutual TLS) come as files or as PEM text.
    temporal_tls: bool | None = None
    temporal_tls_ca_file: Path | None = None
    temporal_tls_server_name: str | None = None
    temporal_tls_cert_file: Path | None = None
    temporal_tls_key_file: Path | None = None
    temporal_tls_cert: SecretStr | None = None
    temporal_tls_key: SecretStr | None = None
    # Sent as "authorization: Bearer <key>" (Temporal Cloud's API keys).
    temporal_api_key: SecretStr | None = None

    # Our own SQL database (message ledger); SQLite under state_dir unless set.
    # SecretStr: the URL may carry the database password, and a repr of the
    # settings (a log line, an error report) must not show it.
    database_url: SecretStr | None = None
    # The password for database_url when the URL carries none: the URL can then sit in
    # plain configuration and the password in a secret (AFTERCARE_DATABASE_PASSWORD_FILE).
    database_password: SecretStr | None = None
    # Where erasures are journaled (keyed hashes and times only), apart from the
    # database: a restored backup gets every erasure since the backup re-applied from
    # it (engine.platform.database.erasure_journal). SQLite under state_dir unless
    # set; a deployment points it at storage that outlives the database and is not
    # restored with it. SecretStr: the URL may carry a password.
    erasure_journal_url: SecretStr | None = None

    # Outgoing email
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_security: SmtpSecurity = "none"
    smtp_timeout_seconds: float = 30.0
    # Verify the server's TLS certificate (against smtp_ca_file when set).
    smtp_tls_verify: bool = True
    smtp_ca_file: str | None = None
    # SMTP sessions one worker keeps open at most (concurrent sends use one each).
    smtp_max_connections: int = Field(default=4, ge=1, le=100)
    sender_address: str = "Aftercare Shop <care@shop.example>"
    # DKIM (activities/email/dkim_signing.py): the RSA private key as PEM text (or
    # AFTERCARE_DKIM_PRIVATE_KEY_FILE), signing as <selector>._domainkey.<domain>;
    # the domain defaults to the sender's. No key: emails go out unsigned.
    dkim_private_key: SecretStr | None = None
    dkim_selector: str = "aftercare"
    dkim_domain: str | None = None
    # The envelope sender (Return-Path) of every email, an address whose mail reaches
    # the bounce endpoint: each message goes out as bounces+<message token>@domain
    # (VERP), so an asynchronous bounce names its message. Unset: the From address.
    bounce_address: str | None = None
    # The inbound SMTP endpoint for bounces (RFC 3464) and complaints (RFC 5965),
    # served by `aftercare http` when the port is not 0; and the bearer token a
    # provider presents to POST them to /mail-reports (no token: no webhook).
    bounce_smtp_host: str = "127.0.0.1"
    bounce_smtp_port: int = Field(default=0, ge=0, le=65535)
    mail_feedback_token: SecretStr | None = None

    # gRPC API
    grpc_host: str = "127.0.0.1"
    grpc_port: int = Field(default=50051, ge=1, le=65535)
    # TLS for the API (PEM files): certificate chain and key; with a client CA the
    # server also demands a client certificate issued by it (mutual TLS).
    grpc_tls_cert: Path | None = None
    grpc_tls_key: Path | None = None
    grpc_tls_client_ca: Path | None = None
    # Orders with hundreds of items stay far below 4 MiB; anything bigger is abuse.
    grpc_max_message_bytes: int = Field(default=4 * 1024 * 1024, ge=64 * 1024)
    # The longest any API handler may run before it is stopped (DEADLINE_EXCEEDED).
    grpc_call_timeout_seconds: float = Field(default=10.0, gt=0)
    # How long the API trusts a verified key without asking the database again:
    # also how long a revocation may take to reach a running server.
    api_key_cache_seconds: float = Field(default=5.0, ge=0, le=300)
    # What the CLI (journey commands, demo) uses to call the API: the key (else
    # state_dir/api-key, made by `aftercare run`), the roots it trusts for TLS (a
    # self-signed server certificate itself) and its certificate for mutual TLS.
    api_key: SecretStr | None = None
    grpc_ca_file: Path | None = None
    grpc_client_cert: Path | None = None
    grpc_client_key: Path | None = None

    # Shop-facing links put into messages (tracking falls back to this when the
    # carrier gives no link).
    shop_url: str = "https://shop.example"

    # The brand every message wears (name and support address default to the sender's).
    brand_name: str | None = None
    brand_logo_url: str | None = None  # default: {shop_url}/static/email-logo.png
    brand_primary_color: str = "#1a56db"
    brand_text_color: str = "#1f2937"
    brand_background_color: str = "#f3f4f6"
    brand_footer_address: str = "Aftercare Shop GmbH, Musterstraße 1, 10115 Berlin, Germany"
    support_email: str | None = None

    # SMS and WhatsApp through Twilio's Messages API. Without an account SID
    # those channels are unavailable and steps fall back to the next channel.
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_messaging_service_sid: str | None = None
    twilio_from_number: str | None = None
    twilio_whatsapp_from: str | None = None
    # Point the SDK somewhere else than api.twilio.com (the local fake in dev/tests).
    twilio_api_base_url: str | None = None
    # How long a send waits for Twilio's answer. Without one the text may or may not
    # have been taken: the ledger row is then held for the delivery-report grace,
    # so Twilio's status callback can settle it before a retry would send again.
    twilio_timeout_seconds: float = Field(default=30.0, gt=0, le=120)
    delivery_report_grace_seconds: float = Field(default=300.0, ge=0, le=86_400)
    # Business-initiated WhatsApp messages as approved templates (Twilio Content API):
    # a YAML file mapping template and locale to a ContentSid and its variables
    # (docs/channels.md#whatsapp-templates). Unset: WhatsApp sends free-form text only
    # inside the 24-hour window a customer's own message opens.
    whatsapp_templates_file: Path | None = None

    # Push through Firebase Cloud Messaging's HTTP v1 API. Without a project id the
    # push channel is unavailable and steps fall back to their next channel. The
    # service account's JSON key (AFTERCARE_FCM_SERVICE_ACCOUNT_FILE names a file).
    fcm_project_id: str | None = None
    fcm_service_account: SecretStr | None = None
    # Somewhere else than https://fcm.googleapis.com (the local fake in dev/tests).
    fcm_api_base_url: str = "https://fcm.googleapis.com"
    fcm_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    # Web push (RFC 8030/8292) to browsers' Push API subscriptions, the push channel's
    # second transport: the VAPID private key (P-256, PEM or the raw key in base64url;
    # AFTERCARE_WEBPUSH_VAPID_PRIVATE_KEY_FILE names a file) and the subject push
    # services may contact (mailto: or https:; required with a key, checked when the
    # worker starts). No key: subscriptions are not sent to.
    webpush_vapid_private_key: SecretStr | None = None
    webpush_vapid_subject: str | None = None
    webpush_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    # How old the send path's copy of the active pauses may be (engine.messaging.pauses):
    # a new pause holds every message within this long. 0 reads them for every send.
    pause_cache_seconds: float = Field(default=2.0, ge=0, le=2)

    # The HTTP app: Twilio status callbacks and the links customers click.
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=1, le=65535)
    # How the outside world reaches the HTTP app (links in messages, callbacks).
    public_base_url: str = "http://127.0.0.1:8000"
    # Signs links and tokens; the dev stack makes one under state_dir when unset.
    secret_key: SecretStr | None = None

    # Payload encryption (AES-GCM) of everything Temporal stores: "kid1:base64key,
    # kid2:base64key", the first encrypts, the rest still decrypt (rotation). The
    # dev stack makes state_dir/codec-keys.json when unset.
    codec_keys: SecretStr | None = None
    # Bearer token of the codec server that lets ops read journeys in the Temporal UI.
    codec_token: SecretStr | None = None
    codec_host: str = "127.0.0.1"
    codec_port: int = Field(default=8234, ge=1, le=65535)
    # The Temporal UI's origin: the only pages the codec server answers (CORS).
    # The dev stack sets it to its own UI.
    codec_ui_origin: str = "http://127.0.0.1:8233"

    # Abuse limits of what anyone can reach (engine.platform.http_limits): requests
    # per client address in a moving window, in the ``limits`` notation
    # ("60/minute", "5 per second"), to the link pages (/u, /p, /f together) and to
    # the codec server's /login.
    link_rate_limit: str = "60/minute"
    codec_login_rate_limit: str = "10/minute"
    # Proxies (IP addresses or CIDR networks, comma-separated) believed about the
    # client's address (X-Forwarded-For) and scheme (X-Forwarded-Proto), by the HTTP
    # app and the codec server. None by default: behind a proxy every client then
    # counts as the proxy's address. NoDecode: our validator reads the list.
    trusted_proxies: Annotated[tuple[str, ...], NoDecode] = ()

    # Click tracking (engine.insights.click_redirects, docs/operations.md): links in
    # messages to these hosts (comma-separated) go through a signed redirect of the
    # HTTP app that records the click; links to other hosts are left as they are, and
    # the redirect refuses them. Empty: the shop's host (shop_url). NoDecode: ours.
    click_allowed_hosts: Annotated[tuple[str, ...], NoDecode] = ()
    click_tracking: bool = True
    # An open-tracking pixel in HTML email. Off: mail-privacy proxies load every
    # image, so opens are inflated and say little.
    open_tracking: bool = False

    @field_validator("click_allowed_hosts", mode="before")
    @classmethod
    def _host_list(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip().lower() for part in value.split(",") if part.strip())
        return value

    def click_hosts(self) -> tuple[str, ...]:
        """The hosts click tracking redirects to: the setting, else the shop's host."""
        if self.click_allowed_hosts:
            return self.click_allowed_hosts
        host = urlsplit(self.shop_url).hostname
        return (host.lower(),) if host else ()

    # Server-side rate limits per channel (Temporal task queue), messages/second.
    email_rate_per_second: float | None = None
    sms_rate_per_second: float | None = 10.0
    whatsapp_rate_per_second: float | None = 10.0
    push_rate_per_second: float | None = None

    # Journey plans (YAML); the ones shipped in workflows/plans unless set.
    plans_dir: Path | None = None
    # Where detractor feedback opens a support ticket (JSON POST); none = not told.
    support_webhook_url: str | None = None
    # Frequency caps over every plan's, per category, as JSON:
    # {"marketing": [{"max": 1, "days": 3}]}; [] uncaps a category. NoDecode: our
    # validator parses it, so a mistake names this setting and the path in it.
    frequency_caps: Annotated[FrequencyCaps | None, NoDecode] = None

    # Integrations (engine.integrations; docs/integrations.md). Shopify's webhook
    # secrets per shop: "shop.myshopify.com=secret,other.myshopify.com=secret2"
    # ("*=secret" for one app serving every shop); unset, the webhook route is off.
    shopify_webhook_secrets: SecretStr | None = None
    # The event bus `aftercare consume` reads (RabbitMQ, AMQP 0-9-1 URL; it carries
    # the broker's password), the queue it reads, and how many messages it holds
    # unacknowledged at once (back-pressure: the broker sends no more).
    broker_url: SecretStr | None = None
    broker_queue: str = "aftercare.orders"
    broker_prefetch: int = Field(default=16, ge=1, le=1000)
    # Journey events published to a RabbitMQ exchange as well as to the webhook
    # subscribers (activities/broker/publish.py): the broker's AMQP URL (a secret: it
    # carries the password, so it is read here at publish time and stored nowhere),
    # the durable topic exchange declared there (routing key: the event type), the
    # event types published (comma-separated; empty: every type) and whether personal
    # data goes too. No URL: nothing is published. NoDecode: our validator reads it.
    events_broker_url: SecretStr | None = None
    events_exchange: str = Field(default="aftercare.journey-events", min_length=1, max_length=255)
    events_types: Annotated[tuple[str, ...], NoDecode] = ()
    events_personal_data: bool = False

    # How long a stopping `aftercare worker` (SIGTERM, Ctrl-C) lets the activities in
    # flight finish before cancelling them; a cancelled attempt goes back to Temporal,
    # which gives it to another worker. Keep it below the supervisor's own patience
    # (compose: stop_grace_period), or the process is killed mid-send.
    worker_shutdown_grace_seconds: float = Field(default=30.0, ge=0, le=3600)

    # Prometheus metrics (engine.platform.telemetry.runtime): each process serves
    # http://metrics_host:<its port>/metrics, its own series and the Temporal SDK's.
    # 0 = not served (the default, so tests and embedding code bind nothing); the
    # dev stack serves them on 9464-9467 unless these are set.
    metrics_host: str = "127.0.0.1"
    api_metrics_port: int = Field(default=0, ge=0, le=65535)
    worker_metrics_port: int = Field(default=0, ge=0, le=65535)
    http_metrics_port: int = Field(default=0, ge=0, le=65535)
    codec_metrics_port: int = Field(default=0, ge=0, le=65535)

    # Traces (engine.platform.telemetry.tracing): every process sends its spans over
    # OTLP/gRPC to this collector, "http://host:4317" (https:// for TLS). Unset: no
    # tracing at all, nothing exported.
    otlp_endpoint: str | None = None

    # Logging
    log_level: str = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # AFTERCARE_<SECRET>_FILE, read from the environment and .env alike.
        variables = [
            source.env_vars
            for source in (env_settings, dotenv_settings)
            if isinstance(source, EnvSettingsSource)
        ]
        return (
            init_settings,
            SecretFileSource(settings_cls, variables),
            env_settings,
            dotenv_settings,
            file_secret_settings,
        )

    @field_validator("*")
    @classmethod
    def _real_secrets(cls, value: object, info: ValidationInfo) -> object:
        # Every secret setting: empty means unset; a placeholder or a key too short is
        # refused, naming the variable (engine.platform.secret_values).
        if not isinstance(value, SecretStr) or info.field_name is None:
            return value
        if not value.get_secret_value().strip():
            return None
        problem = secret_problem(info.field_name, value.get_secret_value())
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("webpush_vapid_private_key")
    @classmethod
    def _vapid_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        try:
            load_private_key(value.get_secret_value())
        except VapidKeyError as err:
            raise ValueError(f"AFTERCARE_WEBPUSH_VAPID_PRIVATE_KEY {err}") from None
        return value

    @field_validator("webpush_vapid_subject")
    @classmethod
    def _vapid_subject(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        problem = subject_problem(value.strip())
        if problem:
            raise ValueError(f"AFTERCARE_WEBPUSH_VAPID_SUBJECT {problem}")
        return value.strip()

    @field_validator("temporal_ui_port", "smtp_port")
    @classmethod
    def _port_in_range(cls, value: int) -> int:
        if not 0 < value < 65536:
            raise ValueError("must be a TCP port between 1 and 65535")
        return value

    @field_validator("link_rate_limit", "codec_login_rate_limit")
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        try:
            parse_rate_limit(value)
        except ValueError:
            raise ValueError(
                f"must be a rate such as '60/minute' or '5 per second', got {value!r}"
            ) from None
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxy_list(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        # Checked here: uvicorn would take a typo for a host name that never matches.
        checked = []
        for entry in value:
            try:
                checked.append(
                    str(ip_network(entry, strict=False)) if "/" in entry else str(ip_address(entry))
                )
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network") from None
        return tuple(checked)

    @field_validator("events_types", mode="before")
    @classmethod
    def _event_type_list(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("events_broker_url")
    @classmethod
    def _amqp_url(cls, value: SecretStr | None) -> SecretStr | None:
        # Checked here, so a typo stops the worker at once rather than failing every
        # publish; the message never repeats the URL (it holds the password).
        if value is None:
            return None
        problem = "must be an AMQP URL: amqp://user:password@host:5672/vhost (amqps:// for TLS)"
        try:
            parts = urlsplit(value.get_secret_value().strip())
            parts.port  # noqa: B018 - raises ValueError for a port out of range
        except ValueError:
            raise ValueError(f"AFTERCARE_EVENTS_BROKER_URL {problem}") from None
        if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
            raise ValueError(f"AFTERCARE_EVENTS_BROKER_URL {problem}")
        return value

    @field_validator("otlp_endpoint")
    @classmethod
    def _otlp_endpoint(cls, value: str | None) -> str | None:
        # The scheme decides TLS for the exporter: without one it would guess.
        if value is None or not value.strip():
            return None
        value = value.strip()
        scheme, _, rest = value.partition("://")
        if scheme not in ("http", "https") or not rest.strip("/"):
            raise ValueError(
                f"must be http://host:port or https://host:port (OTLP/gRPC), got {value!r}"
            )
        return value

    @field_validator("frequency_caps", mode="before")
    @classmethod
    def _frequency_caps_json(cls, value: object) -> object:
        return parse_frequency_caps(value)

    @model_validator(mode="after")
    def _tls_files_in_pairs(self) -> Settings:
        if (self.grpc_tls_cert is None) != (self.grpc_tls_key is None):
            raise ValueError("grpc_tls_cert and grpc_tls_key: set both or neither")
        if self.grpc_tls_client_ca is not None and self.grpc_tls_cert is None:
            raise ValueError("grpc_tls_client_ca: mutual TLS needs grpc_tls_cert and _key")
        if (self.grpc_client_cert is None) != (self.grpc_client_key is None):
            raise ValueError("grpc_client_cert and grpc_client_key: set both or neither")
        return self

    @model_validator(mode="after")
    def _temporal_tls_consistent(self) -> Settings:
        # Named as the environment variables are: that is what an operator sets.
        pairs = (
            ("cert", self.temporal_tls_cert_file, self.temporal_tls_cert),
            ("key", self.temporal_tls_key_file, self.temporal_tls_key),
        )
        for half, as_file, as_text in pairs:
            if as_file is not None and as_text is not None:
                raise ValueError(
                    f"AFTERCARE_TEMPORAL_TLS_{half.upper()}_FILE and "
                    f"AFTERCARE_TEMPORAL_TLS_{half.upper()}: set one of them, not both"
                )
        has_cert = self.temporal_tls_cert_file is not None or self.temporal_tls_cert is not None
        has_key = self.temporal_tls_key_file is not None or self.temporal_tls_key is not None
        if has_cert != has_key:
            raise ValueError(
                "mutual TLS with Temporal needs the client certificate "
                "(AFTERCARE_TEMPORAL_TLS_CERT_FILE or _CERT) and its key "
                "(AFTERCARE_TEMPORAL_TLS_KEY_FILE or _KEY): set both or neither"
            )
        if self.temporal_tls is False and (
            has_cert
            or self.temporal_tls_ca_file is not None
            or self.temporal_tls_server_name is not None
        ):
            raise ValueError(
                "AFTERCARE_TEMPORAL_TLS is false, yet a TLS setting for Temporal is given "
                "(CA file, server name or client certificate): remove one or the other"
            )
        return self

    @model_validator(mode="after")
    def _database_password_fits_the_url(self) -> Settings:
        if self.database_password is None:
            return self
        if self.database_url is None:
            raise ValueError(
                "AFTERCARE_DATABASE_PASSWORD needs AFTERCARE_DATABASE_URL (without a password)"
            )
        try:
            has_password = make_url(self.database_url.get_secret_value()).password is not None
        except ArgumentError:
            raise ValueError("AFTERCARE_DATABASE_URL is not a database URL") from None
        if has_password:
            raise ValueError(
                "AFTERCARE_DATABASE_URL carries a password and AFTERCARE_DATABASE_PASSWORD "
                "is set too: give the password one way only"
            )
        return self

    @property
    def resolved_database_url(self) -> str:
        """The async SQLAlchemy URL: the configured one (with database_password put in,
        when given), or SQLite under state_dir."""
        if self.database_password is not None and self.database_url is not None:
            url = make_url(self.database_url.get_secret_value())
            return url.set(password=self.database_password.get_secret_value()).render_as_string(
                hide_password=False
            )
        if self.database_url is not None and self.database_url.get_secret_value():
            return self.database_url.get_secret_value()
        return f"sqlite+aiosqlite:///{(self.state_dir / 'aftercare.db').resolve()}"

    @property
    def resolved_erasure_journal_url(self) -> str:
        """The erasure journal's async SQLAlchemy URL: the configured one, or SQLite
        under state_dir."""
        if self.erasure_journal_url is not None and self.erasure_journal_url.get_secret_value():
            return self.erasure_journal_url.get_secret_value()
        return f"sqlite+aiosqlite:///{(self.state_dir / 'erasure-journal.db').resolve()}"

    @property
    def grpc_target(self) -> str:
        return f"{self.grpc_host}:{self.grpc_port}"

    @property
    def mail_dir(self) -> Path:
        return self.state_dir / "mail"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
