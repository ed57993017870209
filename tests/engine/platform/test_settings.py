"""Settings come from AFTERCARE_* variables and .env, with embedded defaults."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from engine.platform.settings import Settings


def test_defaults_describe_the_embedded_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("AFTERCARE_")]:
        monkeypatch.delenv(name)
    settings = Settings(_env_file=None)
    assert settings.temporal_address == "127.0.0.1:7233"
    assert settings.grpc_target == "127.0.0.1:50051"
    assert (settings.smtp_host, settings.smtp_port) == ("127.0.0.1", 1025)
    assert settings.resolved_database_url.startswith("sqlite+aiosqlite:///")
    assert settings.resolved_database_url.endswith(".aftercare/aftercare.db")
    assert settings.mail_dir == Path(".aftercare/mail")


def test_environment_variables_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AFTERCARE_GRPC_PORT", "6000")
    monkeypatch.setenv("AFTERCARE_DATABASE_URL", "postgresql+psycopg://u:p@db/aftercare")
    monkeypatch.setenv("AFTERCARE_SMTP_SECURITY", "starttls")
    monkeypatch.setenv("AFTERCARE_SMTP_PASSWORD", "s3cret")
    settings = Settings(_env_file=None)
    assert settings.grpc_port == 6000
    assert settings.resolved_database_url == "postgresql+psycopg://u:p@db/aftercare"
    assert settings.smtp_security == "starttls"
    assert settings.smtp_password is not None
    assert settings.smtp_password.get_secret_value() == "s3cret"
    # Secrets never show in reprs or logs.
    assert "s3cret" not in repr(settings)


def test_dotenv_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AFTERCARE_TASK_QUEUE", raising=False)
    env_file = tmp_path / ".env"
    env_file.write_text("AFTERCARE_TASK_QUEUE=from-dotenv\n")
    assert Settings(_env_file=env_file).task_queue == "from-dotenv"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("AFTERCARE_GRPC_PORT", "70000"),
        ("AFTERCARE_SMTP_PORT", "0"),
        ("AFTERCARE_SMTP_SECURITY", "ssl-please"),
        ("AFTERCARE_LOG_FORMAT", "xml"),
    ],
)
def test_bad_values_are_refused_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as err:
        Settings(_env_file=None)
    assert name.removeprefix("AFTERCARE_").lower() in str(err.value)
