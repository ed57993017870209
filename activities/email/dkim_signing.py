"""DKIM signatures (RFC 6376) on every outgoing email, made with dkimpy.

The signature covers the exact bytes the SMTP client sends (see
``activities.email.smtp``): the message is flattened once, signed, and those
bytes go out, so nothing re-encodes the body or re-draws a MIME boundary after
signing.

Which header fields are signed follows RFC 6376 section 5.4.1 (From, Subject,
Date, To, Message-ID, the MIME fields, the List-* fields) and RFC 8058 section 4,
which requires List-Unsubscribe and List-Unsubscribe-Post to be covered for
one-click unsubscribe. Of those, the ones present are signed; From, Subject,
Date, To, Message-ID and the List-Unsubscribe pair are also signed once more
than they occur ("oversigned"), so a relay cannot add a second copy that a mail
client would show while the signature still verifies.

Canonicalisation is relaxed/relaxed: relays that refold headers or change
trailing whitespace do not break the signature.

The key is RSA (dkimpy signs ed25519 only with PyNaCl, which we do not ship),
given as PEM text in any of the usual encodings (PKCS#1 or PKCS#8); it is
handed to dkimpy as PKCS#1, the one form dkimpy reads.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.utils import parseaddr

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from engine.platform.logging import get_logger
from engine.platform.settings import Settings

log = get_logger(__name__)

# RFC 6376 5.4.1, RFC 8058 4; in this order in the h= tag.
SIGNED_HEADERS: tuple[str, ...] = (
    "From",
    "Sender",
    "Reply-To",
    "Subject",
    "Date",
    "Message-ID",
    "To",
    "Cc",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "In-Reply-To",
    "References",
    "List-Id",
    "List-Help",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "List-Subscribe",
    "List-Post",
    "List-Owner",
    "List-Archive",
    "Auto-Submitted",
)
# Signed one time more than they occur: nobody can add another one unnoticed.
OVERSIGNED_HEADERS = frozenset(
    {"from", "subject", "date", "to", "message-id", "list-unsubscribe", "list-unsubscribe-post"}
)
# RFC 8301: signers must use at least 1024 bits and should use 2048; we insist.
MIN_KEY_BITS = 2048
CANONICALIZATION = (b"relaxed", b"relaxed")


class DkimKeyError(ValueError):
    """The configured key cannot sign (not PEM, not RSA, too short)."""


@dataclass(frozen=True)
class DkimSigner:
    """Signs flattened messages for one domain and selector."""

    domain: str
    selector: str
    # PKCS#1 PEM, the form dkimpy reads.
    private_key_pem: bytes

    @classmethod
    def from_pem(cls, domain: str, selector: str, pem: str | bytes) -> DkimSigner:
        """A signer for ``pem`` (PKCS#1 or PKCS#8, RSA); DkimKeyError when it cannot sign."""
        if not domain or not selector:
            raise DkimKeyError("DKIM needs a signing domain and a selector")
        data = pem.encode() if isinstance(pem, str) else pem
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError):
            # The parser's words are not repeated: they could quote the key.
            raise DkimKeyError("the DKIM private key is not an unencrypted PEM key") from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise DkimKeyError("the DKIM private key must be an RSA key")
        if key.key_size < MIN_KEY_BITS:
            raise DkimKeyError(
                f"the DKIM private key has {key.key_size} bits; it needs at least {MIN_KEY_BITS}"
            )
        pkcs1 = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        return cls(domain=domain.strip().lower(), selector=selector.strip(), private_key_pem=pkcs1)

    def signature_header(self, message: bytes) -> bytes:
        """The ``DKIM-Signature:`` header line (ending in CRLF) for the flattened
        ``message``; put it in front of the message's bytes."""
        return bytes(
            dkim.sign(
                message,
                self.selector.encode("ascii"),
                self.domain.encode("ascii"),
                self.private_key_pem,
                canonicalize=CANONICALIZATION,
                include_headers=headers_to_sign(message),
            )
        )

    def sign(self, message: bytes) -> bytes:
        """``message`` with its DKIM-Signature header in front."""
        return self.signature_header(message) + message


def headers_to_sign(message: bytes) -> list[bytes]:
    """The h= list for ``message``: each field of SIGNED_HEADERS as often as it occurs,
    plus once more for the oversigned ones."""
    parsed = BytesHeaderParser().parsebytes(message)
    present = [name.lower() for name in parsed]
    names: list[bytes] = []
    for name in SIGNED_HEADERS:
        lowered = name.lower()
        count = present.count(lowered)
        extra = 1 if lowered in OVERSIGNED_HEADERS else 0
        names.extend([lowered.encode("ascii")] * (count + extra))
    return names


def public_key_record(signer: DkimSigner) -> str:
    """The TXT record to publish at ``<selector>._domainkey.<domain>``."""
    key = serialization.load_pem_private_key(signer.private_key_pem, password=None)
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode('ascii')}"


def dkim_signer_for(settings: Settings) -> DkimSigner | None:
    """The deployment's signer, or None (with a log line saying so) when no key is
    configured. A key that cannot sign stops the process here, at startup."""
    if settings.dkim_private_key is None:
        log.info("DKIM signing off: AFTERCARE_DKIM_PRIVATE_KEY(_FILE) is not set")
        return None
    domain = settings.dkim_domain or _domain(settings.sender_address)
    signer = DkimSigner.from_pem(
        domain, settings.dkim_selector, settings.dkim_private_key.get_secret_value()
    )
    log.info("DKIM signing on", domain=signer.domain, selector=signer.selector)
    return signer


def _domain(address: str) -> str:
    return parseaddr(address)[1].rpartition("@")[2]
