"""Secret settings: AFTERCARE_<NAME>_FILE for every one of them, and no placeholder or
too short a key accepted (engine.platform.secret_values, through Settings)."""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError
from pydantic_settings import SettingsError

from engine.platform.codec.keys import generate_keyring
from engine.platform.secret_values import placeholder_problem, secret_fields
from engine.platform.settings import Settings
from engine.platform.vapid import new_private_key_pem

SECRETS = secret_fields(Settings)
# A value every secret setting accepts (a valid keyring for codec_keys).
GOOD = {
    "codec_keys": generate_keyring().to_config(),
    "database_url": "postgresql+psycopg://aftercare@db.internal:5432/aftercare",
    "events_broker_url": "amqps://aftercare:k7Qzk7Qz@rabbitmq.internal:5671/shop",
    "webpush_vapid_private_key": new_private_key_pem().strip(),
}


def good_value(field: str) -> str:
    return GOOD.get(field, secrets.token_urlsafe(32))


def variable(field: str) -> str:
    return f"AFTERCARE_{field.upper()}"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.upper().startswith("AFTERCARE_")]:
        monkeypatch.delenv(name)


def test_every_secret_setting_can_be_read_from_a_file() -> None:
    # The secrets named in the issue, and every other SecretStr setting with them.
    assert {
        "secret_key",
        "codec_keys",
        "codec_token",
        "database_url",
        "database_password",
        "smtp_password",
        "twilio_auth_token",
        "api_key",
    } <= set(SECRETS)
    fields = Settings.model_fields
    assert all(f"{name}_file" not in fields for name in SECRETS)


@pytest.mark.parametrize("field", SECRETS)
def test_a_secret_comes_from_the_file_its_file_variable_names(
    field: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    value = good_value(field)
    if field == "database_password":  # a password needs the URL it goes into
        monkeypatch.setenv("AFTERCARE_DATABASE_URL", GOOD["database_url"])
    secret_file = tmp_path / field
    secret_file.write_text(value + "\n")  # files end in a newline; the value does not
    monkeypatch.setenv(variable(field) + "_FILE", str(secret_file))
    setting = getattr(Settings(_env_file=None), field)
    assert isinstance(setting, SecretStr)
    assert setting.get_secret_value() == value


def test_file_variables_are_read_from_the_dotenv_file_too(tmp_path: Path) -> None:
    key = secrets.token_urlsafe(40)
    (tmp_path / "secret").write_text(key)
    env_file = tmp_path / ".env"
    env_file.write_text(f"AFTERCARE_SECRET_KEY_FILE={tmp_path / 'secret'}\n")
    settings = Settings(_env_file=env_file)
    assert settings.secret_key is not None
    assert settings.secret_key.get_secret_value() == key


@pytest.mark.parametrize("field", ["secret_key", "codec_keys", "twilio_auth_token"])
def test_a_secret_given_both_ways_is_refused_naming_both(
    field: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "value").write_text(good_value(field))
    monkeypatch.setenv(variable(field), good_value(field))
    monkeypatch.setenv(variable(field) + "_FILE", str(tmp_path / "value"))
    with pytest.raises(SettingsError) as refused:
        Settings(_env_file=None)
    assert str(refused.value) == (
        f"{variable(field)} and {variable(field)}_FILE are both set: give the secret one way only"
    )


def test_one_way_in_the_environment_and_the_other_in_dotenv_is_refused_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "value").write_text(good_value("codec_token"))
    env_file = tmp_path / ".env"
    env_file.write_text(f"AFTERCARE_CODEC_TOKEN={good_value('codec_token')}\n")
    monkeypatch.setenv("AFTERCARE_CODEC_TOKEN_FILE", str(tmp_path / "value"))
    with pytest.raises(SettingsError, match="AFTERCARE_CODEC_TOKEN and AFTERCARE_CODEC_TOKEN_FILE"):
        Settings(_env_file=env_file)


def test_an_unreadable_or_empty_file_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nowhere" / "secret_key"
    monkeypatch.setenv("AFTERCARE_SECRET_KEY_FILE", str(missing))
    with pytest.raises(SettingsError) as refused:
        Settings(_env_file=None)
    assert str(refused.value) == (
        f"AFTERCARE_SECRET_KEY_FILE: cannot read {missing}: No such file or directory"
    )
    monkeypatch.setenv("AFTERCARE_SECRET_KEY_FILE", str(tmp_path))  # a folder
    with pytest.raises(SettingsError, match=f"AFTERCARE_SECRET_KEY_FILE: cannot read {tmp_path}"):
        Settings(_env_file=None)
    empty = tmp_path / "empty"
    empty.write_text("\n")
    monkeypatch.setenv("AFTERCARE_SECRET_KEY_FILE", str(empty))
    with pytest.raises(SettingsError, match=f"AFTERCARE_SECRET_KEY_FILE: {empty} is empty"):
        Settings(_env_file=None)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_a_file_without_read_permission_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    locked = tmp_path / "locked"
    locked.write_text(good_value("secret_key"))
    locked.chmod(0)
    monkeypatch.setenv("AFTERCARE_SECRET_KEY_FILE", str(locked))
    with pytest.raises(SettingsError, match="Permission denied"):
        Settings(_env_file=None)


def test_an_empty_file_variable_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    key = good_value("secret_key")
    monkeypatch.setenv("AFTERCARE_SECRET_KEY", key)
    monkeypatch.setenv("AFTERCARE_SECRET_KEY_FILE", "")
    settings = Settings(_env_file=None)
    assert settings.secret_key is not None
    assert settings.secret_key.get_secret_value() == key


# Placeholders: the old docker-compose.yml's values among them.
PLACEHOLDERS = [
    "change-me",
    "changeme",
    "CHANGE_ME",
    "secret",
    "placeholder",
    "xxx",
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "<your secret key>",
    "${SECRET_KEY}",
    "your-secret-here-your-secret-here-your-secret",
    "change-me-to-a-long-random-value",
    "change-me-codec-token",
    "please-replace-me-with-something-long-and-random",
]


@pytest.mark.parametrize("field", SECRETS)
@pytest.mark.parametrize("placeholder", PLACEHOLDERS[:3])
def test_a_placeholder_is_refused_for_every_secret(
    field: str, placeholder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    value = f"postgresql+psycopg://u:{placeholder}@db/a" if field == "database_url" else placeholder
    monkeypatch.setenv(variable(field), value)
    with pytest.raises(ValidationError) as refused:
        Settings(_env_file=None)
    assert variable(field) in str(refused.value)
    assert "placeholder" in str(refused.value)
    assert placeholder not in str(refused.value)  # named, never shown


@pytest.mark.parametrize("placeholder", PLACEHOLDERS)
def test_what_counts_as_a_placeholder(placeholder: str) -> None:
    assert placeholder_problem(placeholder) is not None


def test_random_values_are_no_placeholders() -> None:
    for _ in range(200):
        assert placeholder_problem(secrets.token_urlsafe(32)) is None
    assert placeholder_problem(generate_keyring().to_config()) is None


@pytest.mark.parametrize(
    ("field", "length"), [("secret_key", 31), ("codec_token", 20), ("secret_key", 8)]
)
def test_a_key_too_short_is_refused_naming_it(
    field: str, length: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable(field), "k7Qz" * 10)  # 40 characters: accepted
    assert Settings(_env_file=None) is not None
    short = ("k7Qz" * 10)[:length]
    monkeypatch.setenv(variable(field), short)
    with pytest.raises(ValidationError) as refused:
        Settings(_env_file=None)
    assert f"{variable(field)} is {length} characters long; it must have at least 32" in str(
        refused.value
    )
    assert short not in str(refused.value)


@pytest.mark.parametrize("size", [16, 31, 33, 64])
def test_codec_keys_that_are_not_32_bytes_are_refused(
    size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = base64.b64encode(secrets.token_bytes(size)).decode()
    monkeypatch.setenv("AFTERCARE_CODEC_KEYS", f"k1:{key}")
    with pytest.raises(ValidationError) as refused:
        Settings(_env_file=None)
    assert f"AFTERCARE_CODEC_KEYS: key 'k1' is {size} bytes; AES-256 needs 32" in str(refused.value)
    assert key not in str(refused.value)


def test_malformed_codec_keys_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AFTERCARE_CODEC_KEYS", "not-a-keyring-at-all-but-long-enough")
    with pytest.raises(ValidationError, match="AFTERCARE_CODEC_KEYS: codec keys must look like"):
        Settings(_env_file=None)


def test_an_empty_secret_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    for field in SECRETS:
        monkeypatch.setenv(variable(field), "")
    settings = Settings(_env_file=None)
    assert all(getattr(settings, field) is None for field in SECRETS)


def test_the_database_password_goes_into_a_url_without_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    password = secrets.token_urlsafe(32)
    (tmp_path / "pw").write_text(password + "\n")
    monkeypatch.setenv("AFTERCARE_DATABASE_URL", GOOD["database_url"])
    monkeypatch.setenv("AFTERCARE_DATABASE_PASSWORD_FILE", str(tmp_path / "pw"))
    settings = Settings(_env_file=None)
    assert settings.resolved_database_url == (
        f"postgresql+psycopg://aftercare:{password}@db.internal:5432/aftercare"
    )
    assert password not in repr(settings)


def test_a_database_password_needs_a_url_without_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AFTERCARE_DATABASE_PASSWORD", secrets.token_urlsafe(32))
    with pytest.raises(ValidationError, match="AFTERCARE_DATABASE_PASSWORD needs"):
        Settings(_env_file=None)
    monkeypatch.setenv("AFTERCARE_DATABASE_URL", "postgresql+psycopg://a:pw@db/a")
    with pytest.raises(ValidationError, match="give the password one way only"):
        Settings(_env_file=None)
