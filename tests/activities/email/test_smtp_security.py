"""SmtpMailer against real aiosmtpd servers: plain, STARTTLS, implicit TLS, AUTH, a
self-signed certificate made here, and one connection reused until the server drops it."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from activities.email.smtp import PermanentSmtpError, SmtpConfig, SmtpMailer, TransientSmtpError
from engine.devstack.mail_sink import MailboxHandler, ReceivedMail

USER = "mailer"
PASSWORD = "s3cret-pass"


# --- a certificate for 127.0.0.1 and localhost, made for this test run -------------


@dataclass(frozen=True)
class Certificate:
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_file = folder / "cert.pem"
    key_file = folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Certificate(cert_file, key_file)


# --- servers ------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """How one message reached the server."""

    over_tls: bool
    login: bytes | None


class RecordingHandler(MailboxHandler):
    """Keeps every message, and notes whether its session was encrypted and who logged in."""

    def __init__(self) -> None:
        super().__init__(None)
        self.deliveries: list[Delivery] = []

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        transport = server.transport
        over_tls = transport is not None and transport.get_extra_info("ssl_object") is not None
        login = session.auth_data.login if isinstance(session.auth_data, LoginPassword) else None
        self.deliveries.append(Delivery(over_tls=over_tls, login=login))
        return await super().handle_DATA(server, session, envelope)


class DropsAfterContent(RecordingHandler):
    """Takes the second message, then hangs up instead of answering: was it delivered?"""

    dropped = False

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        reply = await super().handle_DATA(server, session, envelope)
        if len(self.received) == 2 and not self.dropped and server.transport is not None:
            self.dropped = True
            server.transport.close()
        return reply


class RefusesOneRecipient(RecordingHandler):
    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"


class OneMessagePerSession(SMTP):
    """Ends the session right after each delivered message, as some relays do."""

    async def smtp_DATA(self, arg: str) -> None:  # noqa: N802 - aiosmtpd's command name
        await super().smtp_DATA(arg)
        if self.transport is not None:
            self.transport.close()


class HangsUpOnSecondMessage(SMTP):
    """Hangs up without a word when a kept session starts another message: a session the
    server already gave up on (idle timeout, restart) that the client has not noticed."""

    delivered_here = 0

    async def smtp_MAIL(self, arg: str) -> None:  # noqa: N802 - aiosmtpd's command name
        if self.delivered_here and self.transport is not None:
            self.transport.close()
            return
        await super().smtp_MAIL(arg)

    async def smtp_DATA(self, arg: str) -> None:  # noqa: N802 - aiosmtpd's command name
        await super().smtp_DATA(arg)
        self.delivered_here += 1


@dataclass
class Accounts:
    """The authenticator: accepts one user with one password; records every attempt."""

    users: dict[str, str] = field(default_factory=lambda: {USER: PASSWORD})
    attempts: list[tuple[str, bytes]] = field(default_factory=list)

    def __call__(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        self.attempts.append((mechanism, data.login))
        expected = self.users.get(data.login.decode())
        ok = expected is not None and data.password == expected.encode()
        # handled=False lets aiosmtpd answer "535 5.7.8 Authentication credentials invalid".
        return AuthResult(success=ok, handled=False, auth_data=data if ok else None)


@dataclass
class Server:
    handler: RecordingHandler
    port: int = 0
    connections: int = 0

    async def wait_for(self, count: int) -> list[ReceivedMail]:
        return await self.handler.wait_for(count, seconds=10)


@asynccontextmanager
async def smtp_server(
    *,
    handler: RecordingHandler | None = None,
    protocol: type[SMTP] = SMTP,
    implicit_tls: ssl.SSLContext | None = None,
    **options: Any,
) -> AsyncIterator[Server]:
    """An aiosmtpd server on this event loop; ``options`` go to its SMTP protocol."""
    server = Server(handler or RecordingHandler())

    def new_session() -> SMTP:
        server.connections += 1
        return protocol(server.handler, hostname="test-smtp", **options)

    loop = asyncio.get_running_loop()
    listener = await loop.create_server(new_session, "127.0.0.1", 0, ssl=implicit_tls)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listener.close()
        await listener.wait_closed()


def starttls_options(certificate: Certificate) -> dict[str, Any]:
    return {"tls_context": certificate.server_context(), "require_starttls": True}


def starttls_with_login(
    certificate: Certificate, accounts: Accounts
) -> AbstractAsyncContextManager[Server]:
    """A server that wants STARTTLS, then a login that ``accounts`` accepts."""
    return smtp_server(authenticator=accounts, auth_required=True, **starttls_options(certificate))


def mailer_for(server: Server, **config: Any) -> SmtpMailer:
    return SmtpMailer(SmtpConfig(host="127.0.0.1", port=server.port, timeout_seconds=5, **config))


def trusted(certificate: Certificate, security: str) -> dict[str, Any]:
    return {"security": security, "ca_file": str(certificate.cert_file)}


def message(n: int = 1, to: str = "jane@example.test") -> EmailMessage:
    email = EmailMessage()
    email["From"] = "Shop <care@shop.test>"
    email["To"] = to
    email["Subject"] = f"Message {n}"
    email["Message-ID"] = f"<m{n}@shop.test>"
    email.set_content(f"Body of message {n}\n")
    return email


def subjects(mails: list[ReceivedMail]) -> list[str]:
    return [str(mail.message["Subject"]) for mail in mails]


@pytest.fixture
def quiet_server_errors(caplog: pytest.LogCaptureFixture) -> None:
    """Servers that hang up on purpose make aiosmtpd log the broken session; that is expected."""
    caplog.set_level("CRITICAL", logger="mail.log")


# --- security modes ---------------------------------------------------------------


async def test_plain_smtp_delivers_unencrypted() -> None:
    async with smtp_server() as server, mailer_for(server) as mailer:
        reply = await mailer.send(message())

        [mail] = await server.wait_for(1)
    assert "accepted" in reply
    assert subjects([mail]) == ["Message 1"]
    assert server.handler.deliveries == [Delivery(over_tls=False, login=None)]


async def test_starttls_upgrades_before_sending(certificate: Certificate) -> None:
    async with (
        smtp_server(**starttls_options(certificate)) as server,
        mailer_for(server, **trusted(certificate, "starttls")) as mailer,
    ):
        await mailer.send(message())

        await server.wait_for(1)
    assert server.handler.deliveries == [Delivery(over_tls=True, login=None)]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_implicit_tls_delivers_and_checks_the_name(
    certificate: Certificate, host: str
) -> None:
    async with smtp_server(implicit_tls=certificate.server_context()) as server:
        config = SmtpConfig(
            host=host, port=server.port, timeout_seconds=5, **trusted(certificate, "tls")
        )
        async with SmtpMailer(config) as mailer:
            await mailer.send(message())

            await server.wait_for(1)
    assert server.handler.deliveries == [Delivery(over_tls=True, login=None)]


async def test_a_server_requiring_starttls_refuses_a_plain_mailer(certificate: Certificate) -> None:
    async with (
        smtp_server(**starttls_options(certificate)) as server,
        mailer_for(server, security="none") as mailer,
    ):
        with pytest.raises(TransientSmtpError, match="530"):
            await mailer.send(message())
    assert server.handler.received == []


@pytest.mark.parametrize("security", ["starttls", "tls"])
async def test_an_untrusted_certificate_is_refused_unless_verification_is_off(
    certificate: Certificate, security: str
) -> None:
    options: dict[str, Any] = (
        starttls_options(certificate)
        if security == "starttls"
        else {"implicit_tls": certificate.server_context()}
    )
    async with smtp_server(**options) as server:
        # Verified against the system's CAs, which never signed our certificate.
        async with mailer_for(server, security=security) as verifying:
            with pytest.raises(TransientSmtpError, match="CERTIFICATE_VERIFY_FAILED"):
                await verifying.send(message(1))
        assert server.handler.received == []

        async with mailer_for(server, security=security, verify=False) as trusting:
            await trusting.send(message(2))
        assert subjects(await server.wait_for(1)) == ["Message 2"]


def test_an_unknown_security_mode_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="security must be one of none, starttls, tls"):
        SmtpConfig(host="127.0.0.1", port=25, security="ssl")


def test_a_mailer_needs_at_least_one_connection() -> None:
    with pytest.raises(ValueError, match="max_connections must be at least 1"):
        SmtpConfig(host="127.0.0.1", port=25, max_connections=0)


def test_a_missing_ca_file_fails_when_the_mailer_is_built(tmp_path: Path) -> None:
    config = SmtpConfig(
        host="127.0.0.1", port=25, security="tls", ca_file=str(tmp_path / "missing.pem")
    )
    with pytest.raises(FileNotFoundError):
        SmtpMailer(config)


# --- authentication -------------------------------------------------------------------


# aiosmtpd warns about AUTH without its own STARTTLS, not knowing the session is TLS.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
@pytest.mark.parametrize("security", ["starttls", "tls"])
async def test_auth_over_tls_logs_in_and_delivers(
    certificate: Certificate, security: str, mechanism: str
) -> None:
    accounts = Accounts()
    other = "LOGIN" if mechanism == "PLAIN" else "PLAIN"
    transport: dict[str, Any] = (
        starttls_options(certificate)
        if security == "starttls"
        # aiosmtpd cannot tell an implicit-TLS session is encrypted; it is.
        else {"implicit_tls": certificate.server_context(), "auth_require_tls": False}
    )
    async with (
        smtp_server(
            authenticator=accounts,
            auth_required=True,
            auth_exclude_mechanism=[other],
            **transport,
        ) as server,
        mailer_for(
            server, username=USER, password=PASSWORD, **trusted(certificate, security)
        ) as mailer,
    ):
        await mailer.send(message())

        await server.wait_for(1)
    assert accounts.attempts == [(mechanism, USER.encode())]
    assert server.handler.deliveries == [Delivery(over_tls=True, login=USER.encode())]


@pytest.mark.parametrize(
    ("username", "password"), [(USER, "wrong-password"), ("someone-else", PASSWORD)]
)
async def test_refused_credentials_are_retryable_and_a_retry_after_the_fix_delivers(
    certificate: Certificate, username: str, password: str
) -> None:
    accounts = Accounts()
    async with (
        starttls_with_login(certificate, accounts) as server,
        mailer_for(
            server, username=username, password=password, **trusted(certificate, "starttls")
        ) as mailer,
    ):
        with pytest.raises(TransientSmtpError, match="535"):
            await mailer.send(message(1))
        assert server.handler.received == []

        # The operator fixes the account on the server to match what the mailer
        # holds: the retry, on the same mailer, gets through.
        accounts.users = {username: password}
        await mailer.send(message(1))
        assert subjects(await server.wait_for(1)) == ["Message 1"]
    # Refused, the client tried each offered mechanism; then it logged in once.
    assert {login for _, login in accounts.attempts} == {username.encode()}


async def test_credentials_are_never_offered_over_an_unencrypted_session() -> None:
    accounts = Accounts()
    # aiosmtpd only offers AUTH on an encrypted session, as a careful server does.
    async with (
        smtp_server(authenticator=accounts, auth_required=True) as server,
        mailer_for(server, username=USER, password=PASSWORD) as mailer,
    ):
        with pytest.raises(TransientSmtpError, match="AUTH"):
            await mailer.send(message())
    assert accounts.attempts == []
    assert server.handler.received == []


# --- kept connections, reused -----------------------------------------------------------


@pytest.mark.parametrize(
    ("concurrently", "max_connections", "sessions"),
    [(False, 4, 1), (True, 1, 1), (True, 4, 4)],
    ids=["one-by-one", "concurrently-one-session", "concurrently-pooled"],
)
async def test_messages_share_kept_authenticated_connections(
    certificate: Certificate, concurrently: bool, max_connections: int, sessions: int
) -> None:
    """One-by-one sends reuse one session; concurrent sends open sessions up to the
    limit (each logs in once) and the fifth message reuses one of them."""
    accounts = Accounts()
    async with (
        starttls_with_login(certificate, accounts) as server,
        mailer_for(
            server,
            username=USER,
            password=PASSWORD,
            max_connections=max_connections,
            **trusted(certificate, "starttls"),
        ) as mailer,
    ):
        if concurrently:
            await asyncio.gather(*(mailer.send(message(n)) for n in range(1, 6)))
        else:
            for n in range(1, 6):
                await mailer.send(message(n))

        mails = await server.wait_for(5)
    assert sorted(subjects(mails)) == [f"Message {n}" for n in range(1, 6)]
    assert server.connections == sessions
    assert len(accounts.attempts) == sessions
    assert all(d == Delivery(over_tls=True, login=USER.encode()) for d in server.handler.deliveries)


async def test_a_server_closing_after_every_message_gets_each_on_a_new_connection() -> None:
    async with smtp_server(protocol=OneMessagePerSession) as server, mailer_for(server) as mailer:
        for n in range(1, 4):
            await mailer.send(message(n))

        mails = await server.wait_for(3)
    assert subjects(mails) == ["Message 1", "Message 2", "Message 3"]
    assert server.connections == 3


async def test_a_kept_connection_the_server_dropped_is_replaced_and_the_message_sent() -> None:
    async with smtp_server(protocol=HangsUpOnSecondMessage) as server, mailer_for(server) as mailer:
        await mailer.send(message(1))
        # The server hangs up on MAIL FROM: before any content, so sending again is safe.
        await mailer.send(message(2))

        mails = await server.wait_for(2)
    assert subjects(mails) == ["Message 1", "Message 2"]
    assert server.connections == 2


@pytest.mark.usefixtures("quiet_server_errors")
async def test_a_drop_after_the_content_went_out_is_not_resent_by_the_mailer() -> None:
    async with (
        smtp_server(handler=DropsAfterContent()) as server,
        mailer_for(server) as mailer,
    ):
        await mailer.send(message(1))
        # The server got message 2 on the kept connection but never said so:
        # resending could duplicate it, so the caller decides (its retry is
        # idempotent through the ledger).
        with pytest.raises(TransientSmtpError, match="SMTPServerDisconnected"):
            await mailer.send(message(2))
        assert subjects(server.handler.received) == ["Message 1", "Message 2"]
        assert server.connections == 1

        await mailer.send(message(3))
        mails = await server.wait_for(3)
    assert subjects(mails) == ["Message 1", "Message 2", "Message 3"]
    assert server.connections == 2


async def test_a_refused_recipient_keeps_the_connection_for_the_next_message() -> None:
    async with (
        smtp_server(handler=RefusesOneRecipient()) as server,
        mailer_for(server) as mailer,
    ):
        with pytest.raises(PermanentSmtpError, match="550"):
            await mailer.send(message(1, to="nobody@example.test"))
        await mailer.send(message(2))

        mails = await server.wait_for(1)
    assert subjects(mails) == ["Message 2"]
    assert server.connections == 1


async def test_aclose_ends_the_session_and_a_later_send_reconnects() -> None:
    async with smtp_server() as server:
        mailer = mailer_for(server)
        await mailer.send(message(1))
        await mailer.aclose()
        await mailer.aclose()  # closing twice is harmless
        await mailer.send(message(2))
        await mailer.aclose()

        mails = await server.wait_for(2)
    assert subjects(mails) == ["Message 1", "Message 2"]
    assert server.connections == 2
