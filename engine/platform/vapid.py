"""The application server's VAPID key (RFC 8292): a P-256 key pair whose private half
signs the token on every web push message and whose public half the shop's page passes
to ``PushManager.subscribe()`` as ``applicationServerKey``.

The private key is given as PEM (PKCS #8 or SEC 1, what ``openssl ecparam -genkey`` or
``vapid --gen`` write) or as the raw 32-byte scalar in base64url (what the web-push
npm tool prints). The subject is how the push service reaches the sender: a
``mailto:`` address or an ``https:`` URL.
"""

from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

_RAW_KEY = re.compile(r"[A-Za-z0-9_-]{42,44}={0,2}")
_MAILTO = re.compile(r"mailto:[^@\s]+@[^@\s]+")


class VapidKeyError(ValueError):
    """The text is not a P-256 private key; the message says why, never the key."""


def load_private_key(text: str) -> ec.EllipticCurvePrivateKey:
    """The key a PEM or base64url text holds."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_private_key(text.encode("ascii"), password=None)
        except (ValueError, TypeError, UnicodeEncodeError):
            raise VapidKeyError("is not a readable unencrypted PEM private key") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(
            key.curve, ec.SECP256R1
        ):
            raise VapidKeyError("must be a P-256 (prime256v1) EC key")
        return key
    if not _RAW_KEY.fullmatch(text):
        raise VapidKeyError("must be PEM or the raw 32-byte key in base64url")
    stripped = text.rstrip("=")
    try:
        raw = base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))
    except (binascii.Error, ValueError):
        raise VapidKeyError("must be PEM or the raw 32-byte key in base64url") from None
    if len(raw) != 32:
        raise VapidKeyError("must be PEM or the raw 32-byte key in base64url")
    try:
        return ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())
    except ValueError:
        raise VapidKeyError("is not a valid P-256 private key") from None


def public_key_of(key: ec.EllipticCurvePrivateKey) -> str:
    """The public key as ``applicationServerKey`` takes it: the uncompressed point,
    base64url without padding."""
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return base64.urlsafe_b64encode(point).rstrip(b"=").decode("ascii")


def new_private_key_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def subject_problem(subject: str) -> str:
    """Why ``subject`` cannot be a VAPID ``sub`` claim; empty when it can."""
    if _MAILTO.fullmatch(subject):
        return ""
    if subject.startswith("https:"):
        try:
            parts = urlsplit(subject)
        except ValueError:
            return "must be a mailto: address or an https: URL"
        if parts.hostname and " " not in subject:
            return ""
    return "must be a mailto: address (mailto:ops@shop.example) or an https: URL"
