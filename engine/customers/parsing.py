"""Turning PreferencesService requests into store calls, naming every bad field.

Update semantics (AIP-134): with an ``update_mask``, exactly the named fields
change, and a named field left empty goes back to its default; without a mask,
the fields present in the request change. Nothing else is touched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aftercare.v1 import journey_pb2 as journey_pb
from aftercare.v1 import preferences_pb2 as pb

from engine.customers.consent import SYSTEM_SOURCES, ConsentDecision
from engine.customers.preferences import KEEP, PreferenceUpdate, QuietHours
from engine.platform.rpc import fields
from engine.platform.rpc.violations import Violations, shown
from workflows.timing import parse_clock

CHANNELS: dict[int, str] = {
    journey_pb.CHANNEL_EMAIL: "email",
    journey_pb.CHANNEL_SMS: "sms",
    journey_pb.CHANNEL_WHATSAPP: "whatsapp",
    journey_pb.CHANNEL_PUSH: "push",
}
CATEGORIES: dict[int, str] = {
    pb.MESSAGE_CATEGORY_TRANSACTIONAL: "transactional",
    pb.MESSAGE_CATEGORY_RELATIONSHIP: "relationship",
    pb.MESSAGE_CATEGORY_FEEDBACK: "feedback",
    pb.MESSAGE_CATEGORY_MARKETING: "marketing",
}
UPDATABLE_FIELDS = ("locale", "timezone", "quiet_hours", "preferred_channel", "consents")
MAX_CONSENT_CHANGES = 50
MAX_LOCALE_LENGTH = 35
MAX_TIMEZONE_LENGTH = 64
DEFAULT_SOURCE = "api"
# What GetPreferences shows where no recorded event decides: not a source a
# recorded event may pretend to.
SHOWN_ONLY_SOURCES = frozenset({"default", "not_required"})
_SOURCE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,39}")
_NO_CONSENT_NEEDED = "transactional messages need no consent and cannot be refused"


@dataclass(frozen=True)
class Update:
    customer_id: str
    changes: PreferenceUpdate
    consents: list[ConsentDecision]
    source: str


@dataclass(frozen=True)
class Unsubscription:
    customer_id: str
    decision: ConsentDecision
    source: str


def customer_id(v: Violations, value: str) -> str:
    return v.customer_id("customer_id", value)


def update(v: Violations, request: pb.UpdatePreferencesRequest) -> Update:
    the_customer = customer_id(v, request.customer_id)
    named = _fields_to_change(v, request)
    locale: str | None = None
    if "locale" in named and request.locale:
        if len(request.locale) > MAX_LOCALE_LENGTH:
            v.add("locale", f"must be at most {MAX_LOCALE_LENGTH} characters")
        else:
            locale = fields.locale(v, "locale", request.locale)
    timezone: str | None = None
    if "timezone" in named and request.timezone:
        if len(request.timezone) > MAX_TIMEZONE_LENGTH:
            v.add("timezone", f"must be at most {MAX_TIMEZONE_LENGTH} characters")
        else:
            timezone = fields.timezone(v, "timezone", request.timezone)
    quiet: QuietHours | None = None
    if "quiet_hours" in named and request.HasField("quiet_hours"):
        quiet = quiet_hours(v, request.quiet_hours)
    preferred: str | None = None
    if "preferred_channel" in named:
        preferred = _channel(v, "preferred_channel", request.preferred_channel)
    consents: list[ConsentDecision] = []
    if "consents" in named:
        if len(request.consents) > MAX_CONSENT_CHANGES:
            v.add("consents", f"must list at most {MAX_CONSENT_CHANGES} changes")
        else:
            consents = [
                _consent_change(v, f"consents[{index}]", change)
                for index, change in enumerate(request.consents)
            ]
    the_source = source(v, request.source)
    return Update(
        customer_id=the_customer,
        changes=PreferenceUpdate(
            locale=locale if "locale" in named else KEEP,
            timezone=timezone if "timezone" in named else KEEP,
            quiet_hours=quiet if "quiet_hours" in named else KEEP,
            preferred_channel=preferred if "preferred_channel" in named else KEEP,
        ),
        consents=consents,
        source=the_source,
    )


def unsubscription(v: Violations, request: pb.UnsubscribeRequest) -> Unsubscription:
    the_customer = customer_id(v, request.customer_id)
    category: str | None = None
    if request.category != pb.MESSAGE_CATEGORY_UNSPECIFIED:
        category = CATEGORIES.get(request.category)
        if category is None:
            v.add("category", f"must be a known message category, got {request.category}")
        elif category == "transactional":
            v.add("category", "transactional messages cannot be unsubscribed from")
    channel = _channel(v, "channel", request.channel)
    return Unsubscription(
        customer_id=the_customer,
        decision=ConsentDecision(granted=False, channel=channel, category=category),
        source=source(v, request.source),
    )


def quiet_hours(v: Violations, message: pb.QuietHours) -> QuietHours | None:
    start = _clock(v, "quiet_hours.start", message.start)
    end = _clock(v, "quiet_hours.end", message.end)
    if start is None or end is None:
        return None
    if start == end:
        v.add("quiet_hours", "start and end must differ: quiet all day leaves no time to send")
        return None
    return QuietHours(start=start, end=end)


def source(v: Violations, value: str) -> str:
    if not value:
        return DEFAULT_SOURCE
    if not _SOURCE.fullmatch(value):
        v.add("source", "must be 1-40 characters of a-z 0-9 _ . - starting with a letter or digit")
    elif value in SYSTEM_SOURCES:
        # These rows must only ever mean "the customer did this on our page or by
        # text"; a caller naming one would make the audit trail lie.
        v.add(
            "source",
            f"{shown(value)} is recorded only by the service itself, for what the customer "
            "did on its pages or by text; name the caller's own source instead",
        )
    elif value in SHOWN_ONLY_SOURCES:
        v.add("source", f"{shown(value)} is what answers show where nothing was recorded")
    return value


def _fields_to_change(v: Violations, request: pb.UpdatePreferencesRequest) -> set[str]:
    if request.HasField("update_mask"):
        named: set[str] = set()
        for index, path in enumerate(request.update_mask.paths):
            if path in UPDATABLE_FIELDS:
                named.add(path)
            else:
                v.add(
                    f"update_mask.paths[{index}]",
                    f"{shown(path)} is not one of {', '.join(UPDATABLE_FIELDS)}",
                )
        if not request.update_mask.paths:
            v.add("update_mask", "names no field: nothing would change")
        return named
    present = {
        name
        for name in ("locale", "timezone", "quiet_hours", "preferred_channel")
        if request.HasField(name)
    }
    if request.consents:
        present.add("consents")
    if not present:
        v.add("update_mask", "no field to change was sent (and no update_mask names one)")
    return present


def _clock(v: Violations, path: str, value: str) -> str | None:
    if not value:
        v.add(path, "is required (HH:MM, 24-hour)")
        return None
    try:
        return parse_clock(value).strftime("%H:%M")
    except ValueError:
        v.add(path, f"must be a 24-hour time HH:MM, got {shown(value)}")
        return None


def _channel(v: Violations, path: str, number: int) -> str | None:
    if number == journey_pb.CHANNEL_UNSPECIFIED:
        return None
    channel = CHANNELS.get(number)
    if channel is None:
        v.add(path, f"must be a known channel, got {number}")
    return channel


def _consent_change(v: Violations, path: str, change: pb.ConsentChange) -> ConsentDecision:
    category: str | None = None
    if change.category == pb.MESSAGE_CATEGORY_UNSPECIFIED:
        v.add(f"{path}.category", "is required")
    else:
        category = CATEGORIES.get(change.category)
        if category is None:
            v.add(f"{path}.category", f"must be a known message category, got {change.category}")
        elif category == "transactional":
            v.add(f"{path}.category", _NO_CONSENT_NEEDED)
    channel = _channel(v, f"{path}.channel", change.channel)
    return ConsentDecision(granted=change.granted, channel=channel, category=category)


def customer_id_request(value: str) -> str:
    v = Violations()
    checked = customer_id(v, value)
    v.raise_if_any()
    return checked


def erasure_request(value: str) -> str:
    """The customer to erase: any well-formed id, also one shaped like an email
    address or a phone number, which new requests may not use (see
    ``Violations.customer_id``) but which customers from before that rule have, and
    must still be able to have erased."""
    v = Violations()
    checked = v.identifier("customer_id", value)
    v.raise_if_any()
    return checked


def update_request(request: pb.UpdatePreferencesRequest) -> Update:
    v = Violations()
    checked = update(v, request)
    v.raise_if_any()
    return checked


def unsubscribe_request(request: pb.UnsubscribeRequest) -> Unsubscription:
    v = Violations()
    checked = unsubscription(v, request)
    v.raise_if_any()
    return checked
