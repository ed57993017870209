"""What ``send_message`` tells Prometheus: each attempt's outcome, and the sends the
ledger answered without sending again.

Recorded on the activity's meter (its worker's runtime), so outside a worker (a test
or a tool calling the activity's code directly) nothing is recorded. Labels are the
message's channel, category and template (the plan's vocabulary) and fixed codes
(``engine.platform.telemetry.catalogue.Outcome``, ``Reason``); never the free-text
detail, which can quote a provider's answer about the recipient.
"""

from __future__ import annotations

from activities.channels.base import DeliveryChannel
from engine.platform.telemetry.catalogue import (
    DUPLICATES_AVOIDED,
    MESSAGES,
    DuplicateReason,
    Outcome,
    Reason,
)
from engine.platform.telemetry.runtime import activity_instruments
from workflows.contracts import Delivery, SendMessageInput, SentMessage

_OUTCOMES = {
    Delivery.SENT: Outcome.SENT,
    Delivery.BOUNCED: Outcome.BOUNCED,
    Delivery.UNAVAILABLE: Outcome.UNAVAILABLE,
    Delivery.DEFERRED: Outcome.DEFERRED,
    Delivery.STALE: Outcome.STALE,
    Delivery.PAUSED: Outcome.PAUSED,
    Delivery.HOLDOUT: Outcome.SKIPPED,  # an experiment's holdout: no message by design
}
_REFUSALS = (Reason.SUPPRESSED, Reason.NO_CONSENT)


def count(request: SendMessageInput, outcome: Outcome, reason: Reason) -> None:
    activity_instruments().counter(MESSAGES).add(
        1,
        channel=str(request.channel),
        category=request.category,
        template=request.template,
        outcome=outcome.value,
        reason=reason.value,
    )


def counted(request: SendMessageInput, result: SentMessage, reason: Reason) -> SentMessage:
    """``result``, counted by its status (a refusal for consent or suppression as
    ``refused``) and ``reason``."""
    outcome = _OUTCOMES.get(result.status, Outcome.FAILED)
    if outcome == Outcome.UNAVAILABLE and reason in _REFUSALS:
        outcome = Outcome.REFUSED
    count(request, outcome, reason)
    return result


def unavailable_reason(
    request: SendMessageInput, channel: DeliveryChannel | None, address: str
) -> Reason:
    """The code of what ``MessageActivities._unavailable`` says in words."""
    if channel is None:
        return Reason.NO_CHANNEL
    if channel.unavailable_reason(request):
        return Reason.CHANNEL_UNAVAILABLE
    return Reason.NO_ADDRESS


def duplicate_avoided(request: SendMessageInput, reason: DuplicateReason) -> None:
    activity_instruments().counter(DUPLICATES_AVOIDED).add(
        1, channel=str(request.channel), reason=reason.value
    )
