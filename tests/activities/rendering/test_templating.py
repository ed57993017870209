"""The Jinja2 conventions shared by the email and SMS templates."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from jinja2 import DictLoader, Environment, TemplateError, TemplateNotFound, UndefinedError

from activities.rendering.formatting import CURRENCY_VAR, FORMAT_LOCALE_VAR, TIMEZONE_VAR
from activities.rendering.templating import (
    TEMPLATE_NAME,
    localised_template,
    render_block,
    template_environment,
)

TEMPLATES = {
    "en/hello.txt.j2": "{% block greeting %}Hello {{ name }}{% endblock %}|{{ name }}",
    "de/hello.txt.j2": "{% block greeting %}Hallo {{ name }}{% endblock %}",
    "en/only_en.txt.j2": "English",
    "de/only_de.txt.j2": "Deutsch",
    "en/hello.html.j2": "<p>{{ name }}</p>",
}


def environment(autoescape: bool = False) -> Environment:
    return template_environment(DictLoader(TEMPLATES), autoescape=autoescape)


def test_undefined_names_fail_loudly() -> None:
    with pytest.raises(UndefinedError):
        environment().from_string("{{ nope }}").render()
    with pytest.raises(UndefinedError):
        environment().from_string("{{ order.nope }}").render(order={})


def test_block_tags_leave_no_blank_lines_or_indentation() -> None:
    source = "A\n  {% if true %}\n  B\n  {% endif %}\nC"
    assert environment().from_string(source).render() == "A\n  B\nC"


def test_the_formatting_filters_are_registered() -> None:
    template = environment().from_string(
        "{{ 1250 | money }} {{ when | date }} {{ when | datetime('short') }} {{ 'DE' | country }}"
    )
    text = template.render(
        {
            "when": datetime(2025, 3, 2, 10, 15, tzinfo=UTC),
            CURRENCY_VAR: "EUR",
            FORMAT_LOCALE_VAR: "de",
            TIMEZONE_VAR: "Europe/Berlin",
        }
    )
    assert text == "12,50\xa0€ 2. März 2025 02.03.25, 11:15 Deutschland"


def test_autoescape_is_the_callers_choice() -> None:
    markup = {"name": "Tom & <Jerry>"}
    plain = environment(autoescape=False).from_string("{{ name }}").render(markup)
    escaped = environment(autoescape=True).from_string("{{ name }}").render(markup)
    assert plain == "Tom & <Jerry>"
    assert escaped == "Tom &amp; &lt;Jerry&gt;"
    by_name = template_environment(
        DictLoader(TEMPLATES), autoescape=lambda name: bool(name and name.endswith(".html.j2"))
    )
    assert by_name.get_template("en/hello.html.j2").render(markup) == (
        "<p>Tom &amp; &lt;Jerry&gt;</p>"
    )
    assert by_name.get_template("en/only_en.txt.j2").render() == "English"


@pytest.mark.parametrize("name", ["order_confirmation", "a", "step2_b"])
def test_plain_identifiers_are_template_names(name: str) -> None:
    assert TEMPLATE_NAME.fullmatch(name)


@pytest.mark.parametrize("name", ["../layout", "en/hello", "Hello", "2fa", "", "a-b", "a.b"])
def test_anything_else_is_refused_before_loading(name: str) -> None:
    assert not TEMPLATE_NAME.fullmatch(name)
    with pytest.raises(ValueError, match="invalid template name"):
        localised_template(environment(), name, "en")


@pytest.mark.parametrize(
    ("customer_locale", "expected"),
    [("de", "de"), ("de-AT", "de"), ("en-GB", "en"), ("fr", "en"), (None, "en"), ("", "en")],
)
def test_the_customers_language_is_used_when_written(
    customer_locale: str | None, expected: str
) -> None:
    template, locale = localised_template(environment(), "hello", customer_locale)
    assert locale == expected
    assert template.name == f"{expected}/hello.txt.j2"


def test_an_untranslated_message_falls_back_to_english() -> None:
    template, locale = localised_template(environment(), "only_en", "de-AT")
    assert (template.name, locale) == ("en/only_en.txt.j2", "en")


def test_a_message_english_lacks_is_not_found() -> None:
    with pytest.raises(TemplateNotFound):
        localised_template(environment(), "only_de", "en")
    with pytest.raises(TemplateNotFound):
        localised_template(environment(), "missing", "de")


def test_another_suffix_picks_another_kind_of_template() -> None:
    template, locale = localised_template(environment(), "hello", "de", ".html.j2")
    assert (template.name, locale) == ("en/hello.html.j2", "en")


def test_a_block_renders_on_its_own() -> None:
    template = environment().get_template("en/hello.txt.j2")
    assert render_block(template, "greeting", {"name": "Jane"}) == "Hello Jane"
    assert template.render(name="Jane") == "Hello Jane|Jane"


def test_a_missing_block_is_a_template_error() -> None:
    template = environment().get_template("en/only_en.txt.j2")
    with pytest.raises(TemplateError, match=re.escape("en/only_en.txt.j2 has no 'subject' block")):
        render_block(template, "subject", {})
