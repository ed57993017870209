"""What every channel shares: the outcome vocabulary and the failure classes."""

from __future__ import annotations

from typing import Protocol

from workflows.contracts import SendMessageInput


class DeliveryError(Exception):
    pass


class PermanentDeliveryError(DeliveryError):
    """The provider refused this address for good (bounce, invalid or unsubscribed
    number): never retry, suppress the address, fall back to the next channel."""


class TransientDeliveryError(DeliveryError):
    """Try again later (4xx, rate limits, outages); ``retry_after`` when the provider said."""

    def __init__(self, message: str, retry_after_seconds: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class Channel(Protocol):
    def address_of(self, request: SendMessageInput) -> str:
        """The recipient address on this channel ('' when the customer has none)."""
        ...

    def unavailable_reason(self, request: SendMessageInput) -> str:
        """Why this channel cannot carry this message here ('' when it can)."""
        ...

    async def deliver(self, request: SendMessageInput, address: str, key: str) -> str:
        """Send; returns the provider's message id. Raises DeliveryError subclasses."""
        ...
