"""How one push to one device can fail, whichever service was asked (FCM, or a
browser's push service): the push channel acts on the kind of failure, not on who
answered."""

from __future__ import annotations

from engine.platform.redaction import redact


class PushFailure(Exception):
    """A failure of one send, its text redacted (services may quote what they got)."""

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))


class DeviceGone(PushFailure):
    """The service no longer knows this token or subscription: forget the device."""


class PushRefused(PushFailure):
    """The service refused this message for this device for good."""


class PushUnavailable(PushFailure):
    """The service could not take the message now; ``maybe_delivered`` when the
    request went out and no answer came back."""

    def __init__(
        self,
        message: str,
        retry_after_seconds: float | None = None,
        *,
        maybe_delivered: bool = False,
    ) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds
        self.maybe_delivered = maybe_delivered
