"""Shopify's webhook signature: ``X-Shopify-Hmac-Sha256`` is the base64 HMAC-SHA256 of
the raw request body under the app's client secret, which is per shop here (each shop
domain its own secret; ``*`` for one app serving every shop)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping

ANY_SHOP = "*"


class ShopSecrets:
    def __init__(self, secrets: Mapping[str, str]) -> None:
        self._secrets = {domain.strip().lower(): secret for domain, secret in secrets.items()}

    @classmethod
    def parse(cls, text: str) -> ShopSecrets:
        """``shop.myshopify.com=secret,other.myshopify.com=secret2`` (the setting's form)."""
        pairs: dict[str, str] = {}
        for entry in text.split(","):
            if not entry.strip():
                continue
            domain, separator, secret = entry.partition("=")
            if not separator or not domain.strip() or not secret.strip():
                raise ValueError("each entry must be shop-domain=secret")
            pairs[domain.strip()] = secret.strip()
        return cls(pairs)

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def secret_for(self, shop_domain: str) -> str | None:
        return self._secrets.get(shop_domain.strip().lower()) or self._secrets.get(ANY_SHOP)

    def verify(self, shop_domain: str, body: bytes, signature: str) -> bool:
        """Whether ``signature`` is the shop's HMAC of ``body`` (constant-time)."""
        secret = self.secret_for(shop_domain)
        if secret is None or not signature:
            return False
        try:
            given = base64.b64decode(signature, validate=True)
        except (binascii.Error, ValueError):
            return False
        expected = hmac.new(secret.encode(), body, hashlib.sha256).digest()
        return hmac.compare_digest(expected, given)


def sign(secret: str, body: bytes) -> str:
    """The header value Shopify would send for ``body`` (for tests and tools)."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
