"""The small vocabularies shared by orders, plans and journeys."""

from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    """Where a journey stands; mirrored in the JourneyStage search attribute."""

    ORDERED = "ordered"
    SHIPPED = "shipped"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERED = "delivered"
    RETURNED = "returned"  # a return or refund: follow-ups for those items stop
    REPLENISHMENT = "replenishment"  # only replenishment reminders remain
    ORDER_CANCELLED = "order_cancelled"
    COMPLETED = "completed"
    STOPPED = "stopped"  # cancelled by an operator: nothing more is sent


class EventType(StrEnum):
    SHIPPED = "shipped"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"
    RETURN_REQUESTED = "return_requested"
    RETURNED = "returned"
    REFUNDED = "refunded"
    ADDRESS_CHANGED = "address_changed"
    FEEDBACK = "feedback"
    REORDERED = "reordered"


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"
    WHATSAPP = "whatsapp"
    PUSH = "push"  # app or browser notification through Firebase Cloud Messaging


# Channels whose provider reports each message's delivery later (Twilio's status
# callbacks): a message such a provider may have taken can be settled by its report.
DELIVERY_REPORTING_CHANNELS = frozenset({Channel.SMS, Channel.WHATSAPP})
