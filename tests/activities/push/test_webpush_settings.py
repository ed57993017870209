"""The VAPID settings: the key as PEM (also from a file) or raw base64url, a key of
another kind or curve refused naming the setting, the subject judged, and the worker's
configuration refusing a key without a subject."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import SecretStr, ValidationError

from activities.push.webpush import WebPushConfig, WebPushSender
from engine.platform.settings import Settings
from engine.platform.vapid import load_private_key, new_private_key_pem, public_key_of

KEY = "AFTERCARE_WEBPUSH_VAPID_PRIVATE_KEY"
SUBJECT = "AFTERCARE_WEBPUSH_VAPID_SUBJECT"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.upper().startswith("AFTERCARE_")]:
        monkeypatch.delenv(name)


def pem_of(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


def test_a_pem_key_from_a_file_and_its_raw_form_are_the_same_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pem = new_private_key_pem()
    key_file = tmp_path / "vapid.pem"
    key_file.write_text(pem)
    monkeypatch.setenv(f"{KEY}_FILE", str(key_file))
    monkeypatch.setenv(SUBJECT, "https://shop.example/contact")
    from_file = WebPushConfig.from_settings(Settings(_env_file=None))
    assert from_file is not None
    assert from_file.subject == "https://shop.example/contact"

    scalar = load_private_key(pem).private_numbers().private_value.to_bytes(32, "big")
    raw = base64.urlsafe_b64encode(scalar).rstrip(b"=").decode()
    monkeypatch.delenv(f"{KEY}_FILE")
    monkeypatch.setenv(KEY, raw)
    from_raw = WebPushConfig.from_settings(Settings(_env_file=None))
    assert from_raw is not None
    assert WebPushSender(from_raw).public_key == WebPushSender(from_file).public_key
    assert WebPushSender(from_raw).public_key == public_key_of(load_private_key(pem))


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (pem_of(rsa.generate_private_key(public_exponent=65537, key_size=2048)), "P-256"),
        (pem_of(ec.generate_private_key(ec.SECP384R1())), "P-256"),
        ("-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----", "PEM"),
        (base64.urlsafe_b64encode(b"\x07" * 31).decode(), "32-byte"),
        ("k7Qz" * 20, "32-byte"),
    ],
    ids=["rsa", "p384", "bad-pem", "31-bytes", "too-long"],
)
def test_a_key_that_is_not_p256_is_refused_naming_the_setting(
    value: str, reason: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY, value)
    monkeypatch.setenv(SUBJECT, "mailto:ops@shop.example")
    with pytest.raises(ValidationError) as refused:
        Settings(_env_file=None)
    assert KEY in str(refused.value)
    assert reason in str(refused.value)


@pytest.mark.parametrize("subject", ["ops@shop.example", "http://shop.example", "mailto:ops"])
def test_a_subject_that_is_no_mailto_or_https_uri_is_refused(subject: str) -> None:
    with pytest.raises(ValidationError, match=SUBJECT):
        Settings(_env_file=None, webpush_vapid_subject=subject)


def test_a_key_without_a_subject_stops_the_worker_naming_it() -> None:
    settings = Settings(_env_file=None, webpush_vapid_private_key=SecretStr(new_private_key_pem()))
    with pytest.raises(ValueError, match=SUBJECT):
        WebPushConfig.from_settings(settings)
    assert WebPushConfig.from_settings(Settings(_env_file=None)) is None
