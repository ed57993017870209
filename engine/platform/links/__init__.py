"""Signed links put into messages: unsubscribe, preferences and feedback.

A link carries a token naming the customer and the journey, signed with the
service's secret key, so following it needs no login and cannot be forged or
pointed at another customer.
"""

from engine.platform.links.tokens import (
    ExpiredLink,
    InvalidLink,
    LinkClaims,
    LinkPurpose,
    LinkSigner,
)
from engine.platform.links.urls import feedback_url, preferences_url, unsubscribe_url

__all__ = [
    "ExpiredLink",
    "InvalidLink",
    "LinkClaims",
    "LinkPurpose",
    "LinkSigner",
    "feedback_url",
    "preferences_url",
    "unsubscribe_url",
]
