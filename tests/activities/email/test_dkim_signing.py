"""DKIM: every email the mailer sends over real SMTP carries a signature that dkimpy's
own verifier accepts against the published key (a stub resolver stands in for DNS),
and that fails once the body or a signed header is changed. The envelope sender is
the VERP bounce address of the message."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from activities.channels.email import EmailChannel, LinkBuilder
from activities.email.dkim_signing import (
    DkimKeyError,
    DkimSigner,
    dkim_signer_for,
    headers_to_sign,
    public_key_record,
)
from activities.email.message import build_email
from activities.email.rendering import EmailRenderer, RenderedEmail
from activities.email.smtp import SmtpConfig, SmtpMailer
from activities.handover import Handover
from engine.devstack.dev_mail_signing import with_dev_mail_signing
from engine.devstack.mail_sink import MailSink, ReceivedMail
from engine.messaging.bounce_address import token_from_verp, verp_address
from engine.messaging.ledger import message_id_for
from engine.platform.links.tokens import LinkSigner
from engine.platform.settings import Settings
from tests.activities.email.samples import BRAND
from tests.support.orders import domain_order
from workflows.contracts import SendMessageInput
from workflows.vocabulary import Channel

DOMAIN = "shop.test"
SELECTOR = "mail2026"
MESSAGE_ID = message_id_for("order-1042/shipping_notice/0/email", DOMAIN)
BOUNCES = f"bounces@{DOMAIN}"

RENDERED = RenderedEmail(
    subject="Ihre Bestellung Nr. 1042 ist unterwegs \u2013 Grüße",
    preheader="Vorschau",
    text="Hallo Jürgen,\n\nIhre Bestellung ist unterwegs.\n",
    html="<p>Grüße aus Berlin</p>",
)


def rsa_pem(bits: int = 2048) -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.fixture(scope="module")
def signer() -> DkimSigner:
    return DkimSigner.from_pem(DOMAIN, SELECTOR, rsa_pem())


def resolver_for(signer: DkimSigner) -> dict[bytes, bytes]:
    """What DNS would answer: the TXT record at <selector>._domainkey.<domain>."""
    name = f"{signer.selector}._domainkey.{signer.domain}.".encode()
    return {name: public_key_record(signer).encode()}


def verifies(content: bytes, records: dict[bytes, bytes]) -> bool:
    asked: list[bytes] = []

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes | None:
        asked.append(name)
        return records.get(name)

    result = bool(dkim.verify(content, dnsfunc=dnsfunc))
    assert asked, "the verifier never looked the key up"
    return result


@pytest.fixture
async def sink(tmp_path: Path) -> AsyncIterator[MailSink]:
    async with MailSink("127.0.0.1", 0, tmp_path) as server:
        yield server


async def send_one(sink: MailSink, signer: DkimSigner, *, unsubscribe: bool) -> ReceivedMail:
    email = build_email(
        RENDERED,
        sender=f"Nordlicht Store <care@{DOMAIN}>",
        recipient_email="juergen@example.test",
        recipient_name="Jürgen Müller",
        message_id=MESSAGE_ID,
        journey_id="order-1042",
        step="shipping_notice",
        list_unsubscribe_url="https://care.shop.test/u/token" if unsubscribe else None,
    )
    config = SmtpConfig(host="127.0.0.1", port=sink.port, timeout_seconds=10)
    async with SmtpMailer(config, dkim=signer) as mailer:
        await mailer.send(email, envelope_from=verp_address(BOUNCES, MESSAGE_ID))
    [received] = await sink.handler.wait_for(1)
    return received


async def test_a_sent_email_verifies_against_the_published_key(
    sink: MailSink, signer: DkimSigner
) -> None:
    received = await send_one(sink, signer, unsubscribe=True)
    assert verifies(received.content, resolver_for(signer))

    signature = received.message["DKIM-Signature"]
    tags = dict(
        part.strip().split("=", 1) for part in str(signature).replace("\r\n", "").split(";")
    )
    assert tags["d"] == DOMAIN
    assert tags["s"] == SELECTOR
    assert tags["c"] == "relaxed/relaxed"
    signed = [name.strip() for name in tags["h"].replace(" ", "").split(":")]
    # RFC 6376 5.4.1 and RFC 8058 4: these are covered, From and the
    # one-click pair once more than they occur.
    for name in ("from", "to", "subject", "date", "message-id", "mime-version", "content-type"):
        assert name in signed
    assert signed.count("from") == 2
    assert signed.count("list-unsubscribe") == 2
    assert signed.count("list-unsubscribe-post") == 2
    # The envelope sender is the message's own bounce address.
    assert received.mail_from == f"bounces+{MESSAGE_ID[1:33]}@{DOMAIN}"
    assert token_from_verp(received.mail_from, BOUNCES) == MESSAGE_ID[1:33]


async def test_a_changed_body_or_header_fails_verification(
    sink: MailSink, signer: DkimSigner
) -> None:
    received = await send_one(sink, signer, unsubscribe=False)
    records = resolver_for(signer)
    assert verifies(received.content, records)

    # One more line after the last MIME part (relaxed canonicalisation ignores
    # only trailing whitespace and empty lines).
    assert not verifies(received.content + b"P.S. Claim your prize\r\n", records)
    # A changed signed header (the subject, RFC 2047-encoded, is one token).
    subject = received.content.index(b"\r\nSubject: ") + len(b"\r\nSubject: ")
    changed_subject = received.content[:subject] + b"Re: " + received.content[subject:]
    assert not verifies(changed_subject, records)
    # Relays refolding headers or adding their own do not break it.
    relayed = b"Received: from relay.test by mx.example.test\r\n" + received.content
    assert verifies(relayed, records)
    added_from = b"From: Mallory <m@evil.test>\r\n" + received.content
    assert not verifies(added_from, records)  # the oversigned From refuses another

    # A key other than the one the selector publishes does not verify it.
    other = DkimSigner.from_pem(DOMAIN, SELECTOR, rsa_pem())
    assert not verifies(received.content, resolver_for(other))


def test_the_signed_list_follows_the_message() -> None:
    message = (
        b"From: a@shop.test\r\nTo: b@example.test\r\nSubject: s\r\n"
        b"Received: by relay\r\nX-Other: 1\r\n\r\nbody\r\n"
    )
    assert headers_to_sign(message) == [
        b"from",
        b"from",
        b"subject",
        b"subject",
        b"date",
        b"message-id",
        b"to",
        b"to",
        b"list-unsubscribe",
        b"list-unsubscribe-post",
    ]


def test_keys_that_cannot_sign_are_refused_at_startup() -> None:
    ed = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(DkimKeyError, match="RSA"):
        DkimSigner.from_pem(DOMAIN, SELECTOR, ed)
    with pytest.raises(DkimKeyError, match="1024 bits"):
        DkimSigner.from_pem(DOMAIN, SELECTOR, rsa_pem(1024))
    with pytest.raises(DkimKeyError, match="not an unencrypted PEM"):
        DkimSigner.from_pem(DOMAIN, SELECTOR, "-----BEGIN PRIVATE KEY-----\nabc\n")


def test_settings_turn_signing_on_from_a_key_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert dkim_signer_for(Settings(_env_file=None)) is None
    pem = rsa_pem()
    (tmp_path / "dkim.pem").write_bytes(pem)
    monkeypatch.setenv("AFTERCARE_DKIM_PRIVATE_KEY_FILE", str(tmp_path / "dkim.pem"))
    settings = Settings(
        _env_file=None, sender_address="Shop <care@Shop.Example>", dkim_selector="s1"
    )
    signer = dkim_signer_for(settings)
    assert signer is not None
    assert (signer.domain, signer.selector) == ("shop.example", "s1")
    assert signer.private_key_pem.startswith(b"-----BEGIN RSA PRIVATE KEY-----")


def test_verp_addresses_round_trip_and_refuse_strangers() -> None:
    token = MESSAGE_ID[1:33]
    address = verp_address(BOUNCES, MESSAGE_ID)
    assert address == f"bounces+{token}@{DOMAIN}"
    assert token_from_verp(address.upper(), BOUNCES) == token
    assert token_from_verp(f"<{address}>") == token
    assert token_from_verp(f"other+{token}@{DOMAIN}", BOUNCES) is None
    assert token_from_verp(f"bounces+nothex@{DOMAIN}", BOUNCES) is None
    assert token_from_verp(BOUNCES, BOUNCES) is None
    # A Message-ID that is not ours gets the plain bounce address.
    assert verp_address(BOUNCES, "<abc@elsewhere.test>") == BOUNCES


def test_the_dev_stack_signs_with_a_key_of_its_own_kept_across_restarts(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, state_dir=tmp_path, sender_address="Shop <care@shop.test>")
    first = with_dev_mail_signing(settings)
    again = with_dev_mail_signing(settings)
    assert first.dkim_private_key is not None
    assert again.dkim_private_key is not None
    assert first.dkim_private_key.get_secret_value() == again.dkim_private_key.get_secret_value()
    assert (tmp_path / "dkim-private.pem").stat().st_mode & 0o777 == 0o600
    assert first.bounce_address == "bounces@shop.test"
    signer = dkim_signer_for(first)
    assert signer is not None
    record = (tmp_path / "dkim-dns.txt").read_text()
    assert record.startswith("aftercare._domainkey.shop.test. IN TXT")
    assert public_key_record(signer) in record
    # What a deployment configures wins.
    configured = settings.model_copy(update={"bounce_address": "b@mail.shop.test"})
    assert with_dev_mail_signing(configured).bounce_address == "b@mail.shop.test"


async def test_the_email_channel_sends_signed_from_the_messages_bounce_address(
    sink: MailSink, signer: DkimSigner
) -> None:
    request = SendMessageInput(
        journey_id="order-DK-1",
        step="cross_sell",
        template="cross_sell",
        category="marketing",
        channel=Channel.EMAIL,
        order=domain_order(locale="de-DE", email="kunde@example.test"),
    )
    links = LinkBuilder(
        shop_url="https://shop.test",
        public_base_url="https://care.shop.test",
        signer=LinkSigner("dkim-test-link-secret-0123456789abcdef"),
    )
    config = SmtpConfig(host="127.0.0.1", port=sink.port, timeout_seconds=10)
    key = "order-DK-1/cross_sell/0/email"
    async with SmtpMailer(config, dkim=signer) as mailer:
        channel = EmailChannel(
            EmailRenderer(BRAND),
            mailer,
            f"Nordlicht <care@{DOMAIN}>",
            links,
            bounce_address=BOUNCES,
        )
        message_id = await channel.deliver(request, "kunde@example.test", key, Handover())
    [received] = await sink.handler.wait_for(1)
    assert message_id == message_id_for(key, DOMAIN)
    assert received.mail_from == verp_address(BOUNCES, message_id)
    assert verifies(received.content, resolver_for(signer))
    # The one-click link names the message's language for the page it opens.
    assert "?lang=de-DE>" in str(received.message["List-Unsubscribe"])
