"""A customer's own choices, as their journeys apply them: consent refusals, quiet
hours, preferred channel, time zone and locale; and whether they have an app device
to push to.

They reach a journey at its start (``JourneyInput.overrides``) and whenever they
change (the ``preferences_changed`` signal), and are kept in its state. Pure and
deterministic: the journey calls these functions with the agenda the plan gives
and gets back the agenda the customer's choices leave.

No personal data: categories, channel names, an IANA zone and a locale.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from workflows.plans.model import Category, Plan, TimeWindow
from workflows.vocabulary import Channel


@dataclass(frozen=True)
class CustomerOverrides:
    """What the customer chose, as of ``revision`` (higher is newer)."""

    # Per channel, the categories the customer refused there.
    refused: dict[Channel, list[Category]] = field(default_factory=dict)
    quiet_hours: TimeWindow | None = None  # None: the plan's
    preferred_channel: Channel | None = None  # None: each step's own order
    timezone: str = ""  # "": the order's
    locale: str = ""  # "": the order's
    # Whether the customer has a push device registered. None: not known (overrides
    # sent before devices were told), so a push step tries its send activity.
    has_push_device: bool | None = None
    revision: int = 0

    def refuses(self, channel: Channel, category: Category) -> bool:
        return category in self.refused.get(channel, [])

    @property
    def without_push_device(self) -> bool:
        """Known to have no push device: a push send would reach nobody."""
        return self.has_push_device is False

    def describe(self) -> str:
        """For the journey's timeline: what now applies, in a few words."""
        parts = [
            f"no {', '.join(sorted(categories))} by {channel}"
            for channel, categories in sorted(self.refused.items())
            if categories
        ]
        if self.preferred_channel is not None:
            parts.append(f"prefers {self.preferred_channel}")
        if self.quiet_hours is not None:
            parts.append(f"quiet hours {self.quiet_hours.start}-{self.quiet_hours.end}")
        if self.timezone:
            parts.append(f"time zone {self.timezone}")
        if self.locale:
            parts.append(f"locale {self.locale}")
        if self.has_push_device is not None:
            parts.append("an app device" if self.has_push_device else "no app device")
        return "; ".join(parts) or "no restrictions"


def channels_for(
    category: Category, channels: tuple[Channel, ...], overrides: CustomerOverrides | None
) -> tuple[Channel, ...]:
    """The step's channels the customer still accepts for ``category``, the
    preferred one first (it is never added to a step that does not list it)."""
    if overrides is None:
        return channels
    allowed = tuple(channel for channel in channels if not overrides.refuses(channel, category))
    preferred = overrides.preferred_channel
    if preferred is not None and preferred in allowed:
        allowed = (preferred, *(channel for channel in allowed if channel != preferred))
    return allowed


def refusal_reason(
    category: Category, channels: tuple[Channel, ...], overrides: CustomerOverrides | None
) -> str:
    """Why a step of ``category`` on ``channels`` must not go out; "" if it may."""
    if overrides is None or not channels or channels_for(category, channels, overrides):
        return ""
    return f"the customer opted out of {category} messages by {', '.join(channels)}"


def plan_for(plan: Plan, overrides: CustomerOverrides | None) -> Plan:
    """The plan with the customer's quiet hours instead of its own."""
    if overrides is None or overrides.quiet_hours is None:
        return plan
    return dataclasses.replace(plan, quiet_hours=overrides.quiet_hours)
