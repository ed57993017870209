"""``aftercare preview`` as a person runs it: every template in every locale lands in files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import json_format
from typer.testing import CliRunner

from activities.email.rendering import TEMPLATE_NAMES
from activities.rendering.formatting import SUPPORTED_LOCALES
from activities.sms.rendering import SMS_TEMPLATE_NAMES
from activities.sms.segments import segment_info
from engine.cli.app import app
from engine.cli.preview import SAMPLE_ORDER_ID, SMS_MAX_SEGMENTS
from engine.cli.samples import sample_order

AFTERCARE = Path(sys.executable).parent / "aftercare"
LOCALES = ("en", "de", "fr", "es")

runner = CliRunner()


def test_the_tested_locales_are_all_there_are() -> None:
    assert set(LOCALES) == set(SUPPORTED_LOCALES)


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("template", TEMPLATE_NAMES)
def test_every_template_previews_in_every_locale(
    tmp_path: Path, template: str, locale: str
) -> None:
    result = runner.invoke(app, ["preview", template, "--locale", locale, "--out", str(tmp_path)])

    assert result.exit_code == 0, result.output
    html = tmp_path / f"{template}.{locale}.html"
    text = tmp_path / f"{template}.{locale}.txt"
    assert SAMPLE_ORDER_ID in html.read_text(encoding="utf-8")
    assert text.read_text(encoding="utf-8").strip()
    lines = result.stdout.splitlines()
    assert lines[0].startswith("subject:")
    assert lines[0].removeprefix("subject:").strip()
    assert str(html) in lines
    assert str(text) in lines


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("template", SMS_TEMPLATE_NAMES)
def test_every_sms_text_previews_in_every_locale(
    tmp_path: Path, template: str, locale: str
) -> None:
    result = runner.invoke(
        app,
        ["preview", template, "--channel", "sms", "--locale", locale, "--out", str(tmp_path)],
    )

    assert result.exit_code == 0, result.output
    sms = tmp_path / f"{template}.{locale}.sms.txt"
    body = sms.read_text(encoding="utf-8").rstrip("\n")
    assert body.startswith("Aftercare Shop: ")
    info = segment_info(body)
    assert info.segments <= SMS_MAX_SEGMENTS
    assert f"segments:  {info.segments} ({info.encoding}, {info.units} units)" in result.stdout
    assert str(sms) in result.stdout.splitlines()
    # Only the text is written for SMS.
    assert [path.name for path in tmp_path.iterdir()] == [sms.name]


def test_the_installed_command_writes_the_files_and_prints_the_subject(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(AFTERCARE), "preview", "order_confirmation", "--locale", "de", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert f"subject:   Ihre Bestellung {SAMPLE_ORDER_ID} ist bestätigt" in done.stdout
    html = tmp_path / "order_confirmation.de.html"
    assert str(html) in done.stdout.splitlines()
    assert SAMPLE_ORDER_ID in html.read_text(encoding="utf-8")
    assert (tmp_path / "order_confirmation.de.txt").read_text(encoding="utf-8").strip()


def test_an_order_given_as_json_is_the_one_previewed(tmp_path: Path) -> None:
    order_file = tmp_path / "order.json"
    # A German customer's order, previewed in English: --locale wins.
    order_file.write_text(json_format.MessageToJson(sample_order("SHOP-77", 1)), encoding="utf-8")
    out = tmp_path / "out"

    result = runner.invoke(
        app, ["preview", "shipping_notice", "--order", str(order_file), "--out", str(out)]
    )

    assert result.exit_code == 0, result.output
    html = (out / "shipping_notice.en.html").read_text(encoding="utf-8")
    assert "SHOP-77" in html
    assert "Jonas" in html
    assert "SHOP-77" in (out / "shipping_notice.en.txt").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("args", "listed"),
    [
        (["no_such_message"], ["order_confirmation", "refund_confirmation"]),
        (["delivered", "--locale", "it"], ["en, de, fr, es"]),
        (["delivered", "--channel", "pigeon"], ["email, sms"]),
        (["thank_you", "--channel", "sms"], ["order_confirmation", "replenishment_reminder"]),
    ],
    ids=["template", "locale", "channel", "sms-template"],
)
def test_an_unknown_choice_exits_2_naming_the_known_ones(
    tmp_path: Path, args: list[str], listed: list[str]
) -> None:
    result = runner.invoke(app, ["preview", *args, "--out", str(tmp_path)])

    assert result.exit_code == 2
    assert "unknown" in result.stderr
    for known in listed:
        assert known in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_invalid_order_file_exits_2_saying_what_is_wrong(tmp_path: Path) -> None:
    order_file = tmp_path / "order.json"
    order_file.write_text('{"orderId": "X-1", "currency": "XXY"}', encoding="utf-8")

    result = runner.invoke(
        app, ["preview", "delivered", "--order", str(order_file), "--out", str(tmp_path / "o")]
    )

    assert result.exit_code == 2
    assert "order.currency" in result.stderr
    assert not (tmp_path / "o").exists()
