"""Click tracking of the links a message carries (see engine.platform.links.clicks).

Each link to an allowed host (the shop's, by default) becomes a signed redirect
through the HTTP app naming the ledger message, the link and its target, so a click
is recorded against the message (its step, variant and channel) before the customer
lands where the link pointed. Links to other hosts (a carrier's tracking page) stay
as they are: the redirect would refuse them. Our own pages (unsubscribe, preference
centre, feedback) are never wrapped: they are not the message's call to action, and
a one-click unsubscribe must stay one click.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from engine.platform.links.clicks import ClickSigner, click_url, host_allowed, open_pixel_url

UNTRACKED_LINKS = frozenset({"unsubscribe", "preferences", "feedback"})
LinkTrack = Callable[[str, str], str]  # (link name, URL) -> the URL to put in the message


@dataclass(frozen=True)
class ClickTracker:
    signer: ClickSigner
    public_base_url: str
    allowed_hosts: tuple[str, ...]
    # An open-tracking pixel in HTML email (AFTERCARE_OPEN_TRACKING; off by default).
    opens: bool = False
    # Links rewritten (AFTERCARE_CLICK_TRACKING; on by default).
    links: bool = True

    def pixel(self, message_key: str) -> str | None:
        """The pixel's URL for this message, or None when opens are not tracked."""
        if not self.opens:
            return None
        return open_pixel_url(self.public_base_url, self.signer.sign_open(message_key))

    def for_message(self, message_key: str) -> LinkTrack:
        """How the links of the ledger message ``message_key`` are written."""

        def track(name: str, url: str) -> str:
            if (
                not self.links
                or name in UNTRACKED_LINKS
                or not host_allowed(url, self.allowed_hosts)
            ):
                return url
            return click_url(self.public_base_url, self.signer.sign(message_key, name, url))

        return track
