"""A browser's Push API subscription (RFC 8030, RFC 8291): what the shop's page gets
from ``PushManager.subscribe()`` and hands to ``RegisterDevice``, and how each part
of it is judged.

* ``endpoint``: the push service's URL for this one subscription, https (plain http
  only on this machine, where the development fake listens). It names the browser the
  way an FCM registration token names an app install, and is kept in its place.
* ``p256dh``: the browser's P-256 ECDH public key, an uncompressed point (65 bytes).
* ``auth``: the 16-byte authentication secret mixed into every message's key.

Both keys are base64url as ``PushSubscription.toJSON()`` gives them (padding allowed);
they are kept without padding.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec

P256DH_BYTES = 65
AUTH_BYTES = 16
# Where a push service's http:// endpoint is allowed: the development fake.
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost"})
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+={0,2}")


@dataclass(frozen=True)
class WebPushKeys:
    """The two keys of a subscription, base64url without padding."""

    p256dh: str
    auth: str


def b64url_decode(value: str) -> bytes | None:
    """The bytes of a base64url text (padding optional); None when it is not one."""
    if not _BASE64URL.fullmatch(value):
        return None
    stripped = value.rstrip("=")
    try:
        return base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))
    except (binascii.Error, ValueError):
        return None


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def endpoint_problem(endpoint: str, max_length: int) -> str:
    """Why ``endpoint`` is not a push service URL; empty when it is one."""
    if not endpoint:
        return "is required"
    if len(endpoint) > max_length:
        return f"must be at most {max_length} characters"
    if not endpoint.isascii() or not endpoint.isprintable() or " " in endpoint:
        return "must be a URL (printable ASCII, no spaces)"
    try:
        parts = urlsplit(endpoint)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - a malformed port raises here
    except ValueError:
        return "must be a URL"
    if parts.scheme not in ("https", "http") or not host:
        return "must be an https URL"
    if parts.scheme == "http" and host not in LOCAL_HOSTS:
        return "must be an https URL (http only for 127.0.0.1 or localhost)"
    if parts.username is not None or parts.fragment:
        return "must be a URL without credentials or fragment"
    return ""


def p256dh_problem(value: str) -> str:
    """Why ``value`` is not a browser's P-256 public key; empty when it is one."""
    if not value:
        return "is required"
    raw = b64url_decode(value)
    if raw is None:
        return "must be base64url"
    if len(raw) != P256DH_BYTES or raw[0] != 0x04:
        return f"must be an uncompressed P-256 point ({P256DH_BYTES} bytes, base64url)"
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    except ValueError:
        return "must be a point on the P-256 curve"
    return ""


def auth_problem(value: str) -> str:
    """Why ``value`` is not a subscription's authentication secret; empty when it is."""
    if not value:
        return "is required"
    raw = b64url_decode(value)
    if raw is None:
        return "must be base64url"
    if len(raw) != AUTH_BYTES:
        return f"must be {AUTH_BYTES} bytes (base64url)"
    return ""


def canonical_keys(p256dh: str, auth: str) -> WebPushKeys:
    """The keys as kept: base64url without padding (both already judged valid)."""
    return WebPushKeys(p256dh=p256dh.rstrip("="), auth=auth.rstrip("="))


def origin_of(endpoint: str) -> str:
    """``scheme://host[:port]`` of an endpoint: its push service, and the ``aud`` of
    the VAPID token that authorises a message to it."""
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc}"
