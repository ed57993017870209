"""A message's handover to its provider: by when it must begin, and whether it has."""

from __future__ import annotations

from dataclasses import dataclass

# What a channel answers when its message could not be on its way in time.
NOT_STARTED = "not on its way before the attempt's deadline; nothing was sent"


@dataclass
class Handover:
    """By when the handover must begin (event-loop time; None: no bound), and whether
    it has. Once begun it is never cut off: an interrupted handover could not tell
    whether the message arrived."""

    start_by: float | None = None
    begun: bool = False
