"""Validation of SubscriptionsService requests (INVALID_ARGUMENT names the field)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from aftercare.v1 import subscriptions_pb2 as pb

from engine.messaging.journey_events import EVENT_TYPES
from engine.platform.rpc.violations import Violations, shown

MAX_URL_LENGTH = 2000
# Plain http only to this machine (a receiver during development).
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_SUBSCRIPTION_ID_LENGTH = 40


@dataclass(frozen=True)
class NewSubscription:
    url: str
    event_types: tuple[str, ...]
    include_personal_data: bool


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot receive webhooks, or None."""
    if not url:
        return "is required"
    if len(url) > MAX_URL_LENGTH:
        return f"must be at most {MAX_URL_LENGTH} characters"
    if not url.isascii() or not url.isprintable() or " " in url:
        return "must be an absolute URL (printable ASCII, no spaces)"
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        return "must be an absolute URL"
    if not host:
        return "must be an absolute URL with a host"
    if parts.username or parts.password:
        return "must not hold credentials (the signature authenticates us)"
    if parts.scheme == "https":
        return None
    if parts.scheme == "http" and host in LOCAL_HOSTS:
        return None
    return "must be https (http only for 127.0.0.1 and localhost)"


def create_request(request: pb.CreateSubscriptionRequest) -> NewSubscription:
    v = Violations()
    problem = url_problem(request.url)
    if problem:
        v.add("url", problem)
    for index, event_type in enumerate(request.event_types):
        if event_type not in EVENT_TYPES:
            v.add(
                f"event_types[{index}]",
                f"unknown event type {shown(event_type)}; one of {', '.join(sorted(EVENT_TYPES))}",
            )
    v.raise_if_any()
    return NewSubscription(
        url=request.url,
        event_types=tuple(sorted(set(request.event_types))),
        include_personal_data=request.include_personal_data,
    )


def subscription_id_request(value: str) -> str:
    v = Violations()
    if not value:
        v.add("subscription_id", "is required")
    elif len(value) > _SUBSCRIPTION_ID_LENGTH or not value.isascii() or not value.isprintable():
        v.add("subscription_id", "must be an id as ListSubscriptions gives it")
    v.raise_if_any()
    return value
