"""Delivery of a built email to the configured SMTP server, with failures classified.

Permanent failures (the server refuses the recipient or the content with a 5xx)
are raised as :class:`PermanentSmtpError`; everything else (4xx, refused or
dropped connections, timeouts, failed TLS or authentication) as
:class:`TransientSmtpError`, which the activity lets Temporal retry with backoff.
Their texts keep the server's codes and words with email addresses and phone numbers
redacted, and they do not chain aiosmtplib's exception, whose repr names the recipient.

One :class:`SmtpMailer` keeps up to ``max_connections`` connections open (TLS and
AUTH done once each) and sends one message at a time over each: sequential sends
reuse one connection; concurrent sends open more, up to the limit, because one
SMTP session waits on a round trip per command and would cap a busy worker at a
few dozen messages a second. A server may drop a connection we kept idle; when
that shows before the message's content went out, nothing can have been
delivered, so the mailer reconnects once and sends again. A drop after
the content went out is ambiguous (the server may have accepted it) and is left
to the caller's retry, which the message ledger makes safe.

Given a DKIM signer or an envelope sender (the VERP bounce address), a message is
flattened once, signed and sent as those exact bytes (``activities.email.envelope``);
otherwise aiosmtplib flattens it as it sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import aiosmtplib

from activities.email.dkim_signing import DkimSigner
from activities.email.envelope import send_as
from activities.handover import NOT_STARTED, Handover
from engine.platform.redaction import redact
from engine.platform.settings import Settings
from engine.platform.telemetry.provider_calls import provider_call

SECURITY_MODES = ("none", "starttls", "tls")

# "Service not available, closing transmission channel": what a server says
# when it ends a session it kept idle too long (or is shutting down).
_CLOSING_CHANNEL = 421

# Everything aiosmtplib raises for a failed conversation with the server.
_SMTP_FAILURES = (aiosmtplib.SMTPException, OSError, TimeoutError)


class SmtpError(Exception):
    pass


class PermanentSmtpError(SmtpError):
    pass


class TransientSmtpError(SmtpError):
    """Try again later; ``maybe_delivered`` when the message's DATA had begun, so the
    server may have taken it."""

    maybe_delivered = False


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    security: str = "none"  # "none" | "starttls" | "tls" (implicit TLS, usually port 465)
    username: str | None = None
    password: str | None = None
    timeout_seconds: float = 30.0
    # Check the server's certificate and name (starttls and tls only).
    verify: bool = True
    # PEM bundle of the CAs to trust instead of the system's (a private relay's CA).
    ca_file: str | None = None
    # Sessions kept open at most (relays often limit sessions per client).
    max_connections: int = 4

    def __post_init__(self) -> None:
        if self.security not in SECURITY_MODES:
            raise ValueError(
                f"security must be one of {', '.join(SECURITY_MODES)}, got {self.security!r}"
            )
        if self.max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, got {self.max_connections}")

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpConfig:
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            security=settings.smtp_security,
            username=settings.smtp_user,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            timeout_seconds=settings.smtp_timeout_seconds,
            verify=settings.smtp_tls_verify,
            ca_file=settings.smtp_ca_file,
            max_connections=settings.smtp_max_connections,
        )

    def tls_context(self) -> ssl.SSLContext:
        """The client TLS context for STARTTLS and implicit TLS."""
        if not self.verify:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        return ssl.create_default_context(cafile=self.ca_file)


class _Connection(aiosmtplib.SMTP):
    """An aiosmtplib client that remembers whether the current message's DATA began,
    and lifts the send's start bound then (an interrupted DATA could have arrived)."""

    data_started = False
    start_bound: asyncio.Timeout | None = None
    handover: Handover | None = None

    async def data(self, *args: Any, **kwargs: Any) -> aiosmtplib.SMTPResponse:
        self.data_started = True
        if self.handover is not None:
            self.handover.begun = True
        if self.start_bound is not None:
            self.start_bound.reschedule(None)
        return await super().data(*args, **kwargs)


class SmtpMailer:
    """Sends over kept-open connections; bound to the event loop that first uses it."""

    def __init__(self, config: SmtpConfig, *, dkim: DkimSigner | None = None) -> None:
        self._config = config
        # Signs every message this mailer sends (None: unsigned).
        self._dkim = dkim
        # Built once (it reads the CA bundle); a bad ca_file fails here, at startup.
        self._tls_context = config.tls_context() if config.security != "none" else None
        # Connections not in use, most recently used last; sessions in use are
        # held by their sender alone.
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(config.max_connections)
        self._closed = False

    async def send(
        self,
        message: EmailMessage,
        handover: Handover | None = None,
        *,
        envelope_from: str | None = None,
    ) -> str:
        """Hand the message to the server; returns the server's acceptance reply.
        ``envelope_from`` is the MAIL FROM (the bounce address; None: the From address).

        Unless the message's DATA has begun by ``handover.start_by`` (waiting for a
        free connection, connecting, the envelope), give up with a TransientSmtpError
        and send nothing; ``handover.begun`` is set when DATA begins."""
        handover = handover or Handover()
        with provider_call("smtp", "send"):
            try:
                async with asyncio.timeout_at(handover.start_by) as bound:
                    held = _Held(None, bound, handover, envelope_from, self._dkim)
                    return await self._send(message, held)
            except TimeoutError:
                raise TransientSmtpError(f"{NOT_STARTED} (all connections busy)") from None

    async def _send(self, message: EmailMessage, holder: _Held) -> str:
        async with self._slots:
            holder.connection = self._idle.pop() if self._idle else None
            try:
                reply = await self._deliver(holder, message)
            except _SMTP_FAILURES as err:
                data_started = holder.connection is not None and holder.connection.data_started
                if _still_usable_after(holder.connection, err):
                    self._release(holder.connection)
                else:
                    _close(holder.connection)
                # Not chained: aiosmtplib's exceptions carry the recipient's address
                # (SMTPRecipientRefused.recipient, in its repr too), and a chained
                # cause travels into the SDK's logged traceback and Temporal's
                # failure. Ours keeps what matters, redacted.
                raise _classified(err, data_started=data_started) from None
            except BaseException:
                # Cancelled mid-conversation (or a bug): the session's state is
                # unknown, so never reuse it.
                _close(holder.connection)
                raise
            finally:
                if holder.connection is not None:
                    holder.connection.start_bound = holder.connection.handover = None
            self._release(holder.connection)
            return reply

    async def aclose(self) -> None:
        """Say goodbye to the server and close the kept connections, if any; a
        send still in flight closes its own when it ends."""
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            if connection.is_connected:
                with contextlib.suppress(*_SMTP_FAILURES):
                    await connection.quit()
            connection.close()

    async def __aenter__(self) -> SmtpMailer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _deliver(self, holder: _Held, message: EmailMessage) -> str:
        kept = holder.connection
        if kept is not None and kept.is_connected:
            kept.start_bound, kept.handover = holder.bound, holder.handover
            try:
                return await _transaction(kept, message, holder)
            except _SMTP_FAILURES as err:
                if kept.data_started or not _is_dropped_connection(err):
                    raise
                # The server ended the kept session before this message's
                # content went out: nothing was delivered, so send it again
                # on a fresh connection, once.
        _close(kept)
        holder.connection = None
        holder.connection = await self._connect()
        holder.connection.start_bound = holder.bound
        holder.connection.handover = holder.handover
        return await _transaction(holder.connection, message, holder)

    async def _connect(self) -> _Connection:
        config = self._config
        connection = _Connection(
            hostname=config.host,
            port=config.port,
            username=config.username,
            password=config.password,
            use_tls=config.security == "tls",
            start_tls=config.security == "starttls",
            tls_context=self._tls_context,
            timeout=config.timeout_seconds,
        )
        # connect() greets, upgrades (STARTTLS) and logs in, or closes itself on failure.
        await connection.connect()
        return connection

    def _release(self, connection: _Connection | None) -> None:
        if connection is not None and connection.is_connected and not self._closed:
            self._idle.append(connection)
        else:
            _close(connection)


@dataclass
class _Held:
    """The connection one send is using (replaced when it reconnects), and the bound
    on starting that send."""

    connection: _Connection | None
    bound: asyncio.Timeout
    handover: Handover
    envelope_from: str | None = None
    dkim: DkimSigner | None = None


def _still_usable_after(connection: _Connection | None, err: BaseException) -> bool:
    # After a refusal the client has reset the envelope (RSET): the session is
    # clean. Anything else (timeouts, drops, TLS or auth trouble) is not.
    refusal = isinstance(err, aiosmtplib.SMTPResponseException | aiosmtplib.SMTPRecipientsRefused)
    return refusal and connection is not None and connection.is_connected


def _close(connection: _Connection | None) -> None:
    if connection is not None:
        connection.close()


async def _transaction(connection: _Connection, message: EmailMessage, holder: _Held) -> str:
    connection.data_started = False
    if holder.envelope_from is None and holder.dkim is None:
        _, reply = await connection.send_message(message)
        return reply
    return await send_as(connection, message, envelope_from=holder.envelope_from, dkim=holder.dkim)


def _is_dropped_connection(err: BaseException) -> bool:
    if isinstance(err, ConnectionError):  # includes SMTPServerDisconnected
        return True
    return isinstance(err, aiosmtplib.SMTPResponseException) and err.code == _CLOSING_CHANNEL


def _classified(err: BaseException, *, data_started: bool = False) -> SmtpError:
    classified = _classify(err)
    if isinstance(classified, TransientSmtpError) and data_started:
        # A refusal of the DATA is an answer; anything else (a timeout, a drop)
        # came while the server may have been taking the message.
        classified.maybe_delivered = not isinstance(err, aiosmtplib.SMTPResponseException)
    return classified


def _classify(err: BaseException) -> SmtpError:
    """Our error for aiosmtplib's ``err``: the server's codes and words, with any
    email address or phone number in them redacted (servers quote the recipient)."""
    if isinstance(err, aiosmtplib.SMTPRecipientsRefused):
        refusals = err.recipients
        detail = "; ".join(_reply(r.code, r.message) for r in refusals)
        if refusals and all(r.code >= 500 for r in refusals):
            return PermanentSmtpError(f"recipient refused: {detail}")
        return TransientSmtpError(f"recipient deferred: {detail}")
    if isinstance(err, aiosmtplib.SMTPRecipientRefused | aiosmtplib.SMTPDataError):
        if err.code >= 500:
            return PermanentSmtpError(_reply(err.code, err.message))
        return TransientSmtpError(_reply(err.code, err.message))
    # Sender refused, auth and TLS failures and 4xx answers are ours or temporary:
    # retrying after the operator fixes them must still deliver.
    if isinstance(err, aiosmtplib.SMTPResponseException):
        # Not str(err): SMTPSenderRefused's names the sender's address.
        return TransientSmtpError(f"{type(err).__name__}: {_reply(err.code, err.message)}")
    return TransientSmtpError(f"{type(err).__name__}: {redact(str(err))}")


def _reply(code: int, message: str) -> str:
    return f"{code} {redact(message)}"
