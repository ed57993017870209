"""The dev stack's DKIM key and bounce address, so ``aftercare run`` sends email as a
deployment should: signed (``state_dir/dkim-private.pem``, made on first use and
kept, readable by the owner only; the TXT record to publish for it is written to
``state_dir/dkim-dns.txt``) and with a VERP envelope sender (``bounces@`` the
sender's domain). Configured values win."""

from __future__ import annotations

from email.utils import parseaddr

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr

from activities.email.dkim_signing import DkimSigner, public_key_record
from engine.platform.files import read_or_create
from engine.platform.settings import Settings

# Where `aftercare run` takes bounce and complaint reports by SMTP, unless set.
DEV_BOUNCE_SMTP_PORT = 1026
DKIM_KEY_FILE_NAME = "dkim-private.pem"
DKIM_RECORD_FILE_NAME = "dkim-dns.txt"


def _new_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def with_dev_mail_signing(settings: Settings) -> Settings:
    """``settings`` with a DKIM key and a bounce address unless they are configured."""
    update: dict[str, object] = {}
    domain = parseaddr(settings.sender_address)[1].rpartition("@")[2] or "localhost"
    if settings.dkim_private_key is None:
        pem = read_or_create(settings.state_dir / DKIM_KEY_FILE_NAME, _new_key)
        signer = DkimSigner.from_pem(settings.dkim_domain or domain, settings.dkim_selector, pem)
        record = (
            f'{signer.selector}._domainkey.{signer.domain}. IN TXT "{public_key_record(signer)}"\n'
        )
        (settings.state_dir / DKIM_RECORD_FILE_NAME).write_text(record, encoding="utf-8")
        update["dkim_private_key"] = SecretStr(pem)
    if settings.bounce_address is None:
        update["bounce_address"] = f"bounces@{domain}"
    return settings.model_copy(update=update) if update else settings


def with_dev_bounce_port(settings: Settings) -> Settings:
    """``settings`` with the bounce endpoint on its dev port unless the port was set
    (an explicit 0 keeps it off)."""
    if "bounce_smtp_port" in settings.model_fields_set:
        return settings
    return settings.model_copy(update={"bounce_smtp_port": DEV_BOUNCE_SMTP_PORT})
