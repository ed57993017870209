"""``aftercare preview --channel push`` and ``--channel whatsapp``: every push
notification and every approved WhatsApp template lands in a file, as FCM and Twilio
would get it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from activities.push.rendering import PUSH_TEMPLATE_NAMES
from activities.rendering.formatting import SUPPORTED_LOCALES
from activities.sms.rendering import SMS_TEMPLATE_NAMES
from engine.cli.app import app
from engine.cli.preview import SAMPLE_ORDER_ID

LOCALES = SUPPORTED_LOCALES
runner = CliRunner()


@pytest.mark.parametrize("locale", LOCALES)
def test_every_push_notification_previews_as_an_fcm_request(tmp_path: Path, locale: str) -> None:
    for template in PUSH_TEMPLATE_NAMES:
        result = runner.invoke(
            app,
            ["preview", template, "--channel", "push", "--locale", locale, "--out", str(tmp_path)],
        )
        assert result.exit_code == 0, (template, result.output)
        lines = result.stdout.splitlines()
        title = lines[0].removeprefix("title:").strip()
        assert title
        assert lines[1].removeprefix("body:").strip()
        request = json.loads((tmp_path / f"{template}.{locale}.push.json").read_text())
        message = request["message"]
        assert message["notification"]["title"] == title
        assert message["data"]["link"].startswith("https://")


def test_a_push_preview_speaks_the_locale(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["preview", "delivered", "--channel", "push", "--locale", "de", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "title:     Zugestellt"
    assert f"Bestellung {SAMPLE_ORDER_ID} ist angekommen" in result.stdout


@pytest.mark.parametrize("locale", LOCALES)
def test_every_text_message_previews_as_a_whatsapp_template(tmp_path: Path, locale: str) -> None:
    for template in SMS_TEMPLATE_NAMES:
        result = runner.invoke(
            app,
            [
                *("preview", template, "--channel", "whatsapp"),
                *("--locale", locale, "--out", str(tmp_path)),
            ],
        )
        assert result.exit_code == 0, (template, result.output)
        fields = json.loads((tmp_path / f"{template}.{locale}.whatsapp.json").read_text())
        assert fields["ContentSid"].startswith("HX")
        variables = json.loads(fields["ContentVariables"])
        assert all(variables.values())
        assert f"({locale}, from " in result.stdout.splitlines()[0]


def test_a_message_without_a_whatsapp_template_says_so(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["preview", "cross_sell", "--channel", "whatsapp", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "no WhatsApp template for 'cross_sell'" in result.output
    assert list(tmp_path.iterdir()) == []


def test_the_configured_templates_file_is_the_one_previewed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    templates = tmp_path / "whatsapp.yaml"
    templates.write_text(
        "cross_sell:\n  en:\n    content_sid: HX" + "c" * 32 + "\n"
        '    variables: {"1": "{{ referral_code }}"}\n'
    )
    monkeypatch.setenv("AFTERCARE_WHATSAPP_TEMPLATES_FILE", str(templates))
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["preview", "cross_sell", "--channel", "whatsapp", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "{{1}}=REF-PREVIEW" in result.stdout
