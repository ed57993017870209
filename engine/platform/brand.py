"""The shop's look and contact details that every email layout uses.

Deliberately holds no copy (taglines, greetings, tone): wording lives in the
per-locale templates so that translators own it, not configuration.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import parseaddr

from engine.platform.settings import Settings

# Colours land inside a <style> block and style attributes, where HTML
# autoescaping does not protect us, so only plain hex colours are accepted.
_HEX_COLOUR = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})")


@dataclass(frozen=True)
class Brand:
    name: str
    sender_name: str
    logo_url: str
    primary_color: str
    text_color: str
    background_color: str
    footer_address: str
    support_email: str
    shop_url: str

    def __post_init__(self) -> None:
        for field_name in ("primary_color", "text_color", "background_color"):
            value = getattr(self, field_name)
            if not _HEX_COLOUR.fullmatch(value):
                raise ValueError(f"{field_name} must be a hex colour like #1a73e8, got {value!r}")
        for field_name in ("shop_url", "logo_url"):
            value = getattr(self, field_name)
            if not value.startswith(("https://", "http://")):
                raise ValueError(f"{field_name} must be an http(s) URL, got {value!r}")
        # Links are built as f"{shop_url}/orders/...", so a trailing slash would double up.
        object.__setattr__(self, "shop_url", self.shop_url.rstrip("/"))


def brand_from_settings(settings: Settings) -> Brand:
    """The brand configured through ``AFTERCARE_BRAND_*`` (name and support address
    default to the sender's)."""
    url = settings.shop_url.rstrip("/")
    sender_name, sender_email = parseaddr(settings.sender_address)
    name = settings.brand_name or sender_name or "Aftercare Shop"
    return Brand(
        name=name,
        sender_name=sender_name or name,
        logo_url=settings.brand_logo_url or f"{url}/static/email-logo.png",
        primary_color=settings.brand_primary_color,
        text_color=settings.brand_text_color,
        background_color=settings.brand_background_color,
        footer_address=settings.brand_footer_address,
        support_email=settings.support_email or sender_email or "care@shop.example",
        shop_url=url,
    )


def default_brand(shop_url: str | None = None) -> Brand:
    """The brand of the default settings, optionally for another shop URL."""
    defaults = Settings(_env_file=None)
    if shop_url:
        defaults = defaults.model_copy(update={"shop_url": shop_url})
    return brand_from_settings(defaults)
