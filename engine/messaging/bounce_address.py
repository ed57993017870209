"""The envelope sender of each email: VERP, so a bounce names the message it is about.

Each email goes out with its own envelope sender (the address a receiving server
writes into Return-Path and sends bounces to): the deployment's bounce address
with the message's token after a ``+`` (variable envelope return path),
``bounces+3f2a...@shop.example`` for the bounce address ``bounces@shop.example``.

The token is the 32 hex digits of the message's Message-ID
(``engine.messaging.ledger.message_id_for``), which the ledger keeps as the row's
``provider_message_id``: no personal data, and nothing to look up but the ledger.
"""

from __future__ import annotations

import re

# The digest of message_id_for: <32 hex digits@domain>.
MESSAGE_TOKEN = re.compile(r"[0-9a-f]{32}")
_MESSAGE_ID = re.compile(r"<?([0-9a-f]{32})@[^>\s]+>?")


def message_token(message_id: str) -> str | None:
    """The token of one of our Message-IDs (``<digest@domain>``); None for another's."""
    found = _MESSAGE_ID.fullmatch(message_id.strip())
    return found.group(1) if found else None


def verp_address(bounce_address: str, message_id: str) -> str:
    """``local+token@domain`` for the bounce address ``local@domain``; the bounce
    address itself for a Message-ID that is not ours."""
    local, at, domain = bounce_address.strip().rpartition("@")
    token = message_token(message_id)
    if not at or not local or not domain:
        raise ValueError(f"not an email address: {bounce_address!r}")
    return f"{local}+{token}@{domain}" if token else f"{local}@{domain}"


def token_from_verp(recipient: str, bounce_address: str | None = None) -> str | None:
    """The message token in a VERP ``recipient`` (``local+token@domain``); None when
    it carries none or, given the deployment's ``bounce_address``, is not one of its
    addresses. Case does not matter (servers may change it)."""
    address = recipient.strip().strip("<>").lower()
    local, at, domain = address.rpartition("@")
    if not at:
        return None
    base, plus, token = local.partition("+")
    if not plus or not MESSAGE_TOKEN.fullmatch(token):
        return None
    if bounce_address is not None:
        own_local, _, own_domain = bounce_address.strip().lower().rpartition("@")
        if (base, domain) != (own_local, own_domain):
            return None
    return token
