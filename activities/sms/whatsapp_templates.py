"""WhatsApp's approved message templates, sent through Twilio's Content API.

A business-initiated WhatsApp message outside the 24-hour customer-service window
must be a template WhatsApp approved: in Twilio, a Content resource (``HX...`` SID)
whose placeholders ``{{1}}``, ``{{2}}``... are filled by ``ContentVariables``, a JSON
object of placeholder to value. Which Content resource stands for which message of a
journey, per language, is configuration: a YAML file
(``AFTERCARE_WHATSAPP_TEMPLATES_FILE``)::

    shipping_notice:                 # the message (the plan step's template)
      en:                            # the customer's language (``en`` is the fallback)
        content_sid: HX0123456789abcdef0123456789abcdef
        variables:                   # placeholder: a Jinja2 expression's template
          "1": "{{ first_name }}"
          "2": "{{ order.order_id }}"
          "3": "{{ links.track_order }}"

The values see what every message template sees (``activities.rendering.context``),
under the same rules (``StrictUndefined``, plain text, one line each). The file is
checked when loaded: a wrong SID, an unknown key or a template that does not compile
names its place in the file.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from jinja2 import TemplateError

from activities.rendering.context import MessageContext, template_variables
from activities.rendering.formatting import DEFAULT_LOCALE, resolve_locale
from activities.rendering.templating import TEMPLATE_NAME, template_environment
from activities.sms.rendering import default_sms_loader, plain_line
from engine.platform.brand import Brand

CONTENT_SID = re.compile(r"HX[0-9a-fA-F]{32}")
PLACEHOLDER = re.compile(r"[A-Za-z0-9_]{1,32}")
# Twilio refuses a variable value longer than this.
MAX_VALUE = 1024
EMPTY_VALUE = "-"


class WhatsAppTemplatesError(ValueError):
    """The templates file is not as documented; the text names where."""


@dataclass(frozen=True)
class ContentTemplate:
    content_sid: str
    # placeholder -> template text of its value
    variables: dict[str, str]


@dataclass(frozen=True)
class RenderedContent:
    """What a Messages create sends instead of a Body."""

    content_sid: str
    content_variables: str  # JSON
    values: dict[str, str]
    locale: str


class WhatsAppTemplates:
    """The configured templates of one deployment; safe to share."""

    def __init__(self, templates: dict[str, dict[str, ContentTemplate]], brand: Brand) -> None:
        self._templates = templates
        self._brand = brand
        self._env = template_environment(default_sms_loader(), autoescape=False)
        for name, locales in templates.items():
            for locale, template in locales.items():
                for placeholder, source in template.variables.items():
                    try:
                        self._env.from_string(source)
                    except TemplateError as err:
                        raise WhatsAppTemplatesError(
                            f"{name}.{locale}.variables.{placeholder}: {err}"
                        ) from None

    @classmethod
    def empty(cls, brand: Brand) -> WhatsAppTemplates:
        return cls({}, brand)

    @classmethod
    def load(cls, path: Path, brand: Brand) -> WhatsAppTemplates:
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as err:
            raise WhatsAppTemplatesError(f"{path}: {err}") from None
        return cls(parse_templates(document or {}, str(path)), brand)

    def find(
        self, template: str, customer_locale: str | None
    ) -> tuple[ContentTemplate, str] | None:
        """The template for the message in the customer's language (or English)."""
        locales = self._templates.get(template)
        if not locales:
            return None
        locale = resolve_locale(customer_locale)
        for candidate in (locale, DEFAULT_LOCALE):
            if candidate in locales:
                return locales[candidate], candidate
        return None

    def render(self, template: str, context: MessageContext) -> RenderedContent | None:
        """ContentSid and ContentVariables for the message; None when none is configured."""
        found = self.find(template, context.order.customer.locale)
        if found is None:
            return None
        content, locale = found
        variables = template_variables(self._brand, context, locale)
        values = {
            # Twilio refuses an empty value (21656): a dash stands in for nothing.
            placeholder: plain_line(self._env.from_string(source).render(variables))[:MAX_VALUE]
            or EMPTY_VALUE
            for placeholder, source in content.variables.items()
        }
        return RenderedContent(
            content_sid=content.content_sid,
            content_variables=json.dumps(values, ensure_ascii=False, separators=(",", ":")),
            values=values,
            locale=locale,
        )


def parse_templates(document: Any, where: str) -> dict[str, dict[str, ContentTemplate]]:
    if not isinstance(document, dict):
        raise WhatsAppTemplatesError(f"{where}: a mapping of message name to languages")
    parsed: dict[str, dict[str, ContentTemplate]] = {}
    for name, locales in document.items():
        if not isinstance(name, str) or not TEMPLATE_NAME.fullmatch(name):
            raise WhatsAppTemplatesError(f"{where}: {name!r} is not a message name")
        if not isinstance(locales, dict) or not locales:
            raise WhatsAppTemplatesError(f"{where}: {name}: a mapping of language to template")
        parsed[name] = {}
        for locale, entry in locales.items():
            path = f"{where}: {name}.{locale}"
            if not isinstance(entry, dict) or set(entry) - {"content_sid", "variables"}:
                raise WhatsAppTemplatesError(f"{path}: only content_sid and variables")
            sid = entry.get("content_sid")
            if not isinstance(sid, str) or not CONTENT_SID.fullmatch(sid):
                raise WhatsAppTemplatesError(f"{path}.content_sid: 'HX' and 32 hex digits")
            variables = entry.get("variables") or {}
            if not isinstance(variables, dict):
                raise WhatsAppTemplatesError(f"{path}.variables: a mapping")
            checked: dict[str, str] = {}
            for placeholder, source in variables.items():
                key = str(placeholder)
                if not PLACEHOLDER.fullmatch(key) or not isinstance(source, str):
                    raise WhatsAppTemplatesError(
                        f"{path}.variables.{key}: a placeholder name and a text"
                    )
                checked[key] = source
            parsed[name][str(locale)] = ContentTemplate(sid, checked)
    return parsed
