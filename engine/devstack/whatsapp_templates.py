"""The WhatsApp templates the dev stack uses with the Twilio fake (``whatsapp_templates.yaml``)."""

from __future__ import annotations

from pathlib import Path

DEV_WHATSAPP_TEMPLATES = Path(__file__).with_name("whatsapp_templates.yaml")
