"""Tokens for the links customers click, signed with itsdangerous.

Each purpose is the signer's salt, so a token made for one purpose (say, a
feedback link) is worthless for another (unsubscribing). Tokens carry the time
they were signed; ``verify`` takes the oldest age it accepts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from itsdangerous import BadData, SignatureExpired, TimestampSigner, URLSafeTimedSerializer


class LinkPurpose(StrEnum):
    UNSUBSCRIBE = "unsubscribe"
    PREFERENCES = "preferences"
    FEEDBACK = "feedback"


@dataclass(frozen=True)
class LinkClaims:
    customer_id: str
    journey_id: str
    purpose: LinkPurpose
    issued_at: datetime  # aware, UTC, whole seconds


class InvalidLink(Exception):
    """The token is not one we signed for this purpose (forged, altered, truncated)."""


class ExpiredLink(InvalidLink):
    """The token is genuine but older than the accepted age."""

    def __init__(self, message: str, issued_at: datetime | None) -> None:
        super().__init__(message)
        self.issued_at = issued_at


class _ClockedSigner(TimestampSigner):
    """A TimestampSigner that reads the time from a given clock (tests, simulations)."""

    def __init__(self, *args: Any, clock: Callable[[], datetime], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clock = clock

    def get_timestamp(self) -> int:
        return int(self._clock().timestamp())


class LinkSigner:
    def __init__(self, secret: str, *, clock: Callable[[], datetime] | None = None) -> None:
        if not secret:
            raise ValueError("links need a non-empty secret key")
        self._secret = secret
        self._clock = clock

    def sign(self, purpose: str, customer_id: str, journey_id: str) -> str:
        """A URL-safe token for this purpose, customer and journey."""
        payload = {"c": customer_id, "j": journey_id}
        token = self._serializer(LinkPurpose(purpose)).dumps(payload)
        assert isinstance(token, str)
        return token

    def verify(self, token: str, purpose: str, max_age: timedelta) -> LinkClaims:
        """The claims of a token signed for ``purpose`` at most ``max_age`` ago.

        Raises ExpiredLink for an older (or future-dated) token and InvalidLink
        for anything that is not a token we signed for this purpose. Ages are
        counted in whole seconds, as itsdangerous stamps them.
        """
        purpose = LinkPurpose(purpose)
        if max_age < timedelta(0):
            raise ValueError("max_age must not be negative")
        try:
            payload, issued_at = self._serializer(purpose).loads(
                token, max_age=int(max_age.total_seconds()), return_timestamp=True
            )
        except SignatureExpired as exc:
            raise ExpiredLink(f"{purpose} link expired", exc.date_signed) from exc
        except BadData as exc:
            raise InvalidLink(f"not a valid {purpose} link") from exc
        if not (
            isinstance(payload, dict)
            and isinstance(payload.get("c"), str)
            and isinstance(payload.get("j"), str)
        ):
            # Signed by us but not in our shape: an old or foreign payload.
            raise InvalidLink(f"not a valid {purpose} link")
        assert isinstance(issued_at, datetime)
        return LinkClaims(
            customer_id=payload["c"],
            journey_id=payload["j"],
            purpose=purpose,
            issued_at=issued_at,
        )

    def _serializer(self, purpose: LinkPurpose) -> URLSafeTimedSerializer:
        if self._clock is None:
            return URLSafeTimedSerializer(self._secret, salt=purpose.value)
        return URLSafeTimedSerializer(
            self._secret,
            salt=purpose.value,
            signer=_ClockedSigner,
            signer_kwargs={"clock": self._clock},
        )
