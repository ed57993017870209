"""Secrets never reach the logs: the database password, the SMTP password, the
Twilio auth token, the codec keys and API keys, through real code paths that log
(settings, keyring loading, `aftercare db upgrade` in a process of its own, the
API refusing keys) with logging configured as every process configures it."""

from __future__ import annotations

import base64
import io
import logging
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import structlog
from aftercare.v1 import journey_pb2 as pb
from aftercare.v1 import journey_pb2_grpc as pb_grpc
from pydantic import SecretStr, ValidationError
from temporalio.client import Client

from engine.access.api_keys import parse_key
from engine.access.auth import authenticator_for
from engine.journeys.directory import JourneyDirectory
from engine.platform.codec.keys import KeyringError
from engine.platform.codec.runtime import keyring_for
from engine.platform.database.migrate import upgrade_database
from engine.platform.logging import configure_logging, get_logger
from engine.platform.settings import Settings
from engine.processes.api import build_server
from tests.support.api_keys import bearer, create_key
from tests.support.databases import postgres_available, postgres_database, sqlite_url
from tests.support.net import free_port

AFTERCARE = Path(sys.executable).parent / "aftercare"


@dataclass(frozen=True)
class Secrets:
    database_password: str
    smtp_password: str
    twilio_auth_token: str
    codec_key: str
    secret_key: str
    codec_token: str

    def all(self) -> dict[str, str]:
        return dict(vars(self))


def new_secrets() -> Secrets:
    # Random per test, so a hit can only come from this test's own settings.
    return Secrets(
        database_password=f"dbpw{secrets.token_hex(12)}",
        smtp_password=f"smtppw{secrets.token_hex(12)}",
        twilio_auth_token=secrets.token_hex(16),
        codec_key=base64.b64encode(secrets.token_bytes(32)).decode(),
        secret_key=secrets.token_urlsafe(32),
        codec_token=secrets.token_urlsafe(24),
    )


def assert_absent(text: str, found_secrets: dict[str, str]) -> None:
    leaked = [name for name, value in found_secrets.items() if value in text]
    assert not leaked, f"secrets in the output: {leaked}"


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """Logging configured as the service configures it (JSON, DEBUG so every line
    counts), its handler writing into a buffer; the previous configuration after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    structlog_config = structlog.get_config()
    buffer = io.StringIO()
    # configure_logging binds its handler to the sys.stderr of the moment.
    real_stderr, sys.stderr = sys.stderr, buffer
    try:
        configure_logging("DEBUG", "json")
    finally:
        sys.stderr = real_stderr
    yield buffer
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.configure(**structlog_config)


def settings_with(values: Secrets, database_url: str, **extra: Any) -> Settings:
    return Settings(
        _env_file=None,
        database_url=database_url,
        smtp_user="mailer",
        smtp_password=values.smtp_password,
        twilio_account_sid="AC" + "0" * 32,
        twilio_auth_token=values.twilio_auth_token,
        codec_keys=f"k1:{values.codec_key}",
        secret_key=values.secret_key,
        codec_token=values.codec_token,
        **extra,
    )


def with_password(url: str, password: str) -> str:
    """``url`` with ``password`` for its user (the local PostgreSQL trusts every
    connection, so a password is accepted and ignored)."""
    return url.replace("postgres@", f"postgres:{password}@", 1)


def test_settings_logged_or_shown_hide_every_secret(
    captured_logs: io.StringIO, tmp_path: Path
) -> None:
    values = new_secrets()
    url = f"postgresql+psycopg://app:{values.database_password}@db.internal:5432/aftercare"
    settings = settings_with(values, url, state_dir=tmp_path)
    # The secrets are really configured: the code that needs them gets them.
    assert values.database_password in settings.resolved_database_url
    assert settings.twilio_auth_token is not None
    assert settings.twilio_auth_token.get_secret_value() == values.twilio_auth_token
    assert keyring_for(settings).current_key_id == "k1"

    log = get_logger("tests.secrets")
    log.info("settings loaded", settings=settings)
    log.info("settings dump", **settings.model_dump())
    shown = repr(settings) + str(settings) + settings.model_dump_json()
    logged = captured_logs.getvalue()
    assert "settings loaded" in logged
    assert_absent(logged + shown, values.all())


def test_a_bad_codec_key_is_refused_without_quoting_it(tmp_path: Path) -> None:
    values = new_secrets()
    # The second key is 16 bytes, not 32: refused, naming its id only.
    short_key = base64.b64encode(secrets.token_bytes(16)).decode()
    configured = f"k2:{values.codec_key},k1:{short_key}"
    with pytest.raises(ValidationError) as invalid:
        Settings(_env_file=None, state_dir=tmp_path, codec_keys=configured)
    assert "AFTERCARE_CODEC_KEYS" in str(invalid.value)
    assert "'k1'" in str(invalid.value)
    assert_absent(str(invalid.value), {"good key": values.codec_key, "short key": short_key})
    # Handed over past validation (a copy with an update), the keyring refuses it too.
    settings = Settings(_env_file=None, state_dir=tmp_path).model_copy(
        update={"codec_keys": SecretStr(configured)}
    )
    with pytest.raises(KeyringError) as refused:
        keyring_for(settings)
    assert "'k1'" in str(refused.value)
    assert_absent(str(refused.value), {"good key": values.codec_key, "short key": short_key})


def run_db_upgrade(tmp_path: Path, database_url: str) -> subprocess.CompletedProcess[str]:
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("AFTERCARE_")
    }
    environment.update(
        AFTERCARE_DATABASE_URL=database_url,
        AFTERCARE_LOG_LEVEL="DEBUG",
        AFTERCARE_LOG_FORMAT="json",
        AFTERCARE_STATE_DIR=str(tmp_path / "state"),
    )
    return subprocess.run(
        [str(AFTERCARE), "db", "upgrade"],
        cwd=tmp_path,  # no .env of the checkout
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_db_upgrade_never_prints_the_database_password(tmp_path: Path) -> None:
    if not postgres_available():
        pytest.fail("PostgreSQL is not reachable on 127.0.0.1:5432")
    password = f"dbpw{secrets.token_hex(12)}"
    with postgres_database() as url:
        done = run_db_upgrade(tmp_path, with_password(url, password))
    assert done.returncode == 0, done.stderr
    assert "database at revision head" in done.stdout
    assert_absent(done.stdout + done.stderr, {"database password": password})


def test_a_failed_db_upgrade_never_prints_the_database_password(tmp_path: Path) -> None:
    password = f"dbpw{secrets.token_hex(12)}"
    # Nothing listens there: the upgrade fails with a traceback on stderr.
    url = f"postgresql+psycopg://postgres:{password}@127.0.0.1:{free_port()}/aftercare"
    failed = run_db_upgrade(tmp_path, url)
    assert failed.returncode != 0
    assert "Traceback" in failed.stderr
    assert_absent(failed.stdout + failed.stderr, {"database password": password})


async def test_refused_api_keys_are_not_logged(
    captured_logs: io.StringIO, temporal_client: Client, tmp_path: Path
) -> None:
    database = sqlite_url(tmp_path)
    upgrade_database(database)
    values = new_secrets()
    settings = settings_with(values, database, state_dir=tmp_path, grpc_port=free_port())
    real_key = await create_key(database, ["journeys:read"])
    key_id, real_secret = parse_key(real_key)
    # The right id with a wrong secret, and a token not even in the key's form.
    wrong_secret = real_secret[::-1]
    wrong_key = f"ak_{key_id}_{wrong_secret}"
    malformed = f"not-a-key-{secrets.token_hex(16)}"
    async with authenticator_for(settings) as authenticator:
        api = build_server(
            JourneyDirectory(temporal_client, f"test-{secrets.token_hex(4)}"),
            settings.grpc_target,
            authenticator=authenticator,
            settings=settings,
        )
        await api.start()
        try:
            async with grpc.aio.insecure_channel(settings.grpc_target) as channel:
                stub = pb_grpc.JourneyServiceStub(channel)
                for token in (wrong_key, malformed):
                    with pytest.raises(grpc.aio.AioRpcError) as refused:
                        await stub.ListJourneys(
                            pb.ListJourneysRequest(customer_id="c-1"),
                            metadata=bearer(token),
                            timeout=30,
                        )
                    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
                    assert_absent(refused.value.details() or "", {"token": token})
        finally:
            await api.stop(grace_seconds=1)
    logged = captured_logs.getvalue()
    assert logged.count("api call refused") == 2
    assert_absent(
        logged,
        {
            **values.all(),
            "real secret": real_secret,
            "wrong secret": wrong_secret,
            "malformed token": malformed,
        },
    )
