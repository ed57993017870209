"""The Jinja2 conventions every channel's templates follow.

A message's templates live at ``<locale>/<name>.<kind>.j2`` under the channel's
template folder. The name arrives in workflow input, so it must be a plain
identifier (``TEMPLATE_NAME``) and can never address a file outside a locale
folder; a message not yet translated goes out in English rather than not at all.

Customer data reaches templates only as variables, never as template source, so
``{{ 7*7 }}`` in a name stays literal, and ``StrictUndefined`` makes a typo fail
loudly instead of sending a blank. Whether output is autoescaped is the caller's
choice: HTML must be, plain text (a text email, an SMS) must not, or "&amp;"
would reach the customer as it is.

A template may define blocks (a subject, an SMS's link) that are rendered on
their own with ``render_block``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from jinja2 import (
    BaseLoader,
    Environment,
    StrictUndefined,
    Template,
    TemplateError,
    TemplateNotFound,
)

from activities.rendering.formatting import DEFAULT_LOCALE, register_filters, resolve_locale

# Plain-text templates: an email's subject, preheader and text body, an SMS.
TEXT_SUFFIX = ".txt.j2"
# What a message's name may look like (see above).
TEMPLATE_NAME = re.compile(r"[a-z][a-z0-9_]*")


def template_environment(
    loader: BaseLoader, *, autoescape: bool | Callable[[str | None], bool]
) -> Environment:
    """A Jinja2 environment with the shared conventions and the formatting filters."""
    environment = Environment(
        loader=loader,
        autoescape=autoescape,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    register_filters(environment)
    return environment


def localised_template(
    environment: Environment, name: str, customer_locale: str | None, suffix: str = TEXT_SUFFIX
) -> tuple[Template, str]:
    """The template of message ``name`` in the customer's language, and that language.

    Raises ValueError for a name that is not a plain identifier, and
    TemplateNotFound when the message has no template even in English.
    """
    if not TEMPLATE_NAME.fullmatch(name):
        raise ValueError(f"invalid template name {name!r}")
    locale = resolve_locale(customer_locale)
    try:
        return environment.get_template(f"{locale}/{name}{suffix}"), locale
    except TemplateNotFound:
        if locale == DEFAULT_LOCALE:
            raise
        return environment.get_template(f"{DEFAULT_LOCALE}/{name}{suffix}"), DEFAULT_LOCALE


def render_block(template: Template, block: str, variables: Mapping[str, Any]) -> str:
    """Block ``block`` of ``template`` rendered on its own; TemplateError when it has none."""
    render = template.blocks.get(block)
    if render is None:
        raise TemplateError(f"{template.name} has no {block!r} block")
    return "".join(render(template.new_context(dict(variables))))
