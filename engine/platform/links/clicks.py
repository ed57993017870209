"""Signed click-tracking links: ``/c/{token}`` on the HTTP app, redirecting to a target.

The token binds three things, signed with the service's secret key (itsdangerous,
its own salt, so no other link's token is worth anything here): the ledger message
(its idempotency key: journey, step, iteration, channel), the link's name in the
message ("track_order", "review") and the target URL. Altering any of them breaks
the signature, so the redirect can never be pointed anywhere we did not send, and
the HTTP app still checks the target's host against the deployment's allowed hosts
(``AFTERCARE_CLICK_ALLOWED_HOSTS``) before redirecting. Tokens do not expire: a
customer may click a link in an old email; they carry the time they were made.

The open-tracking pixel (``/o/{token}``, only when ``AFTERCARE_OPEN_TRACKING`` is on)
has a token of its own salt naming the ledger message alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote, urlsplit

from itsdangerous import BadData, URLSafeTimedSerializer

from engine.platform.links.tokens import InvalidLink

CLICK_SALT = "click"
CLICK_PREFIX = "c"
OPEN_SALT = "open"
OPEN_PREFIX = "o"
MAX_TOKEN_LENGTH = 2000


@dataclass(frozen=True)
class ClickClaims:
    message_key: str
    link: str
    target: str
    issued_at: datetime


class ClickSigner:
    def __init__(self, secret: str) -> None:
        if not secret:
            raise ValueError("click links need a non-empty secret key")
        self._serializer = URLSafeTimedSerializer(secret, salt=CLICK_SALT)
        self._opens = URLSafeTimedSerializer(secret, salt=OPEN_SALT)

    def sign_open(self, message_key: str) -> str:
        """The token of the open-tracking pixel of the ledger message ``message_key``."""
        token = self._opens.dumps(message_key)
        assert isinstance(token, str)
        return token

    def verify_open(self, token: str) -> str:
        """The ledger message key of a genuine pixel token; InvalidLink otherwise."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise InvalidLink("not a valid pixel")
        try:
            key = self._opens.loads(token)
        except BadData as exc:
            raise InvalidLink("not a valid pixel") from exc
        if not isinstance(key, str) or not key:
            raise InvalidLink("not a valid pixel")
        return key

    def sign(self, message_key: str, link: str, target: str) -> str:
        # A list, not a mapping: the token goes into texts too, where length costs.
        token = self._serializer.dumps([message_key, link, target])
        assert isinstance(token, str)
        return token

    def verify(self, token: str) -> ClickClaims:
        """The claims of a genuine click token; InvalidLink for anything else."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise InvalidLink("not a valid click link")
        try:
            payload, issued_at = self._serializer.loads(token, return_timestamp=True)
        except BadData as exc:
            raise InvalidLink("not a valid click link") from exc
        if not (
            isinstance(payload, list)
            and len(payload) == 3
            and all(isinstance(part, str) and part for part in payload)
        ):
            raise InvalidLink("not a valid click link")
        assert isinstance(issued_at, datetime)
        key, link, target = payload
        return ClickClaims(message_key=key, link=link, target=target, issued_at=issued_at)


def click_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/{CLICK_PREFIX}/{quote(token, safe='')}"


def open_pixel_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/{OPEN_PREFIX}/{quote(token, safe='')}"


def host_allowed(url: str, allowed_hosts: tuple[str, ...]) -> bool:
    """Whether ``url`` is an http(s) URL on one of ``allowed_hosts`` (exact host
    names, case-insensitive; ``*.shop.example`` allows its subdomains, not itself)."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not host or parts.username or parts.password:
        return False
    for allowed in allowed_hosts:
        allowed = allowed.lower()
        if allowed.startswith("*."):
            if host.endswith(allowed[1:]):
                return True
        elif host == allowed:
            return True
    return False
