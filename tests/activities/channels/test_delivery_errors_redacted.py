"""A channel's DeliveryError never carries an address or number, whichever channel made
it and whatever the provider said: its text goes on into tables, failures and logs."""

from __future__ import annotations

from activities.channels.base import PermanentDeliveryError, TransientDeliveryError


def test_delivery_errors_redact_what_they_are_given() -> None:
    bounced = PermanentDeliveryError("550 5.1.1 <jane.doe@example.com>: User unknown")
    assert str(bounced) == "550 5.1.1 <<email>>: User unknown"
    later = TransientDeliveryError(
        "Twilio answered 429: too many texts to +4915112345678", 30.0, maybe_delivered=True
    )
    assert str(later) == "Twilio answered 429: too many texts to <phone>"
    assert later.retry_after_seconds == 30.0
    assert later.maybe_delivered
