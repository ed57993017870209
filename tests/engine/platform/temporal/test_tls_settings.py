"""The Temporal TLS settings and the files they name: every mistake stops a process
at start with the setting's name, before any connection is tried."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from pydantic import SecretStr, ValidationError
from temporalio.converter import DataConverter
from temporalio.service import TLSConfig

from engine.platform.settings import Settings
from engine.platform.temporal.connection import connect
from engine.platform.temporal.tls import TemporalConfigError, temporal_access, uses_tls
from tests.support.grpc_tls_proxy import Pki, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


def refusal(**values: Any) -> str:
    with pytest.raises(TemporalConfigError) as raised:
        temporal_access(settings(**values))
    return str(raised.value)


def test_plaintext_unless_something_asks_for_tls(pki: Pki) -> None:
    assert not uses_tls(settings())
    assert temporal_access(settings()).tls is False
    # An API key alone turns TLS on (Temporal Cloud): it must not travel in clear.
    cloud = temporal_access(settings(temporal_api_key=SecretStr("k")))
    assert cloud.tls is True
    assert cloud.api_key == "k"
    assert uses_tls(settings(temporal_tls_ca_file=pki.ca_file))
    # Unless plaintext is asked for explicitly (a sidecar proxy on the same host).
    assert temporal_access(settings(temporal_tls=False, temporal_api_key=SecretStr("k"))).tls is (
        False
    )


def test_tls_config_from_files(pki: Pki) -> None:
    access = temporal_access(
        settings(
            temporal_tls_ca_file=pki.ca_file,
            temporal_tls_server_name="temporal.internal",
            temporal_tls_cert_file=pki.client.cert,
            temporal_tls_key_file=pki.client.key,
        )
    )
    assert isinstance(access.tls, TLSConfig)
    assert access.tls.server_root_ca_cert == pki.ca_file.read_bytes()
    assert access.tls.domain == "temporal.internal"
    assert access.tls.client_cert == pki.client.cert.read_bytes()
    assert access.tls.client_private_key == pki.client.key.read_bytes()


def test_pem_text_with_escaped_line_breaks(pki: Pki) -> None:
    one_line = pki.client.cert.read_text().strip().replace("\n", "\\n")
    access = temporal_access(
        settings(
            temporal_tls_cert=SecretStr(one_line),
            temporal_tls_key=SecretStr(pki.client.key.read_text()),
        )
    )
    assert isinstance(access.tls, TLSConfig)
    assert access.tls.client_cert == pki.client.cert.read_bytes()
    assert access.tls.server_root_ca_cert is None  # the system's roots


def test_missing_ca_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "ca.pem"
    assert refusal(temporal_tls_ca_file=missing) == (
        f"AFTERCARE_TEMPORAL_TLS_CA_FILE: cannot read {missing}: no such file or directory"
    )


def test_ca_file_without_certificate(tmp_path: Path) -> None:
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate\n")
    assert refusal(temporal_tls_ca_file=bogus) == (
        f"AFTERCARE_TEMPORAL_TLS_CA_FILE: {bogus} holds no PEM certificate"
    )


def test_missing_certificate_file(pki: Pki, tmp_path: Path) -> None:
    missing = tmp_path / "client.crt"
    assert refusal(temporal_tls_cert_file=missing, temporal_tls_key_file=pki.client.key) == (
        f"AFTERCARE_TEMPORAL_TLS_CERT_FILE: cannot read {missing}: no such file or directory"
    )


def test_unreadable_key(pki: Pki, tmp_path: Path) -> None:
    garbage = tmp_path / "client.key"
    garbage.write_text("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
    assert refusal(temporal_tls_cert_file=pki.client.cert, temporal_tls_key_file=garbage) == (
        f"AFTERCARE_TEMPORAL_TLS_KEY_FILE: {garbage} holds no PEM private key"
    )
    unreadable = tmp_path / "locked"
    unreadable.mkdir()  # a folder: read_bytes fails as on a file without permission
    assert refusal(
        temporal_tls_cert_file=pki.client.cert, temporal_tls_key_file=unreadable
    ).startswith(f"AFTERCARE_TEMPORAL_TLS_KEY_FILE: cannot read {unreadable}: ")


def test_encrypted_key(pki: Pki, tmp_path: Path) -> None:
    key = serialization.load_pem_private_key(pki.client.key.read_bytes(), password=None)
    encrypted = tmp_path / "client.key"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    assert refusal(temporal_tls_cert_file=pki.client.cert, temporal_tls_key_file=encrypted) == (
        f"AFTERCARE_TEMPORAL_TLS_KEY_FILE: {encrypted} holds an encrypted private key; "
        "give it unencrypted"
    )


def test_key_of_another_certificate(pki: Pki) -> None:
    assert refusal(
        temporal_tls_cert_file=pki.client.cert, temporal_tls_key_file=pki.stranger_client.key
    ) == (
        "AFTERCARE_TEMPORAL_TLS_KEY_FILE: the private key does not belong to the "
        "certificate in AFTERCARE_TEMPORAL_TLS_CERT_FILE"
    )


def test_expired_client_certificate(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    leaf = trustme.CA().issue_cert(
        "old.example", not_before=now - timedelta(days=30), not_after=now - timedelta(days=1)
    )
    message = refusal(
        temporal_tls_cert=SecretStr(leaf.cert_chain_pems[0].bytes().decode()),
        temporal_tls_key=SecretStr(leaf.private_key_pem.bytes().decode()),
    )
    assert message.startswith("AFTERCARE_TEMPORAL_TLS_CERT: the client certificate expired on ")


def test_pem_text_without_pem() -> None:
    assert refusal(
        temporal_tls_cert=SecretStr("paste error"), temporal_tls_key=SecretStr("paste error")
    ) == ("AFTERCARE_TEMPORAL_TLS_CERT: holds no PEM certificate")


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (
            {"temporal_tls_cert_file": "c.pem"},
            "mutual TLS with Temporal needs the client certificate",
        ),
        ({"temporal_tls_key": "PEM"}, "mutual TLS with Temporal needs the client certificate"),
        (
            {
                "temporal_tls_cert_file": "c.pem",
                "temporal_tls_cert": "PEM",
                "temporal_tls_key": "K",
            },
            "AFTERCARE_TEMPORAL_TLS_CERT_FILE and AFTERCARE_TEMPORAL_TLS_CERT: set one of them",
        ),
        (
            {"temporal_tls": False, "temporal_tls_ca_file": "ca.pem"},
            "AFTERCARE_TEMPORAL_TLS is false, yet a TLS setting for Temporal is given",
        ),
    ],
)
def test_settings_refuse_half_a_pair_or_a_contradiction(
    values: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ValidationError, match=expected):
        settings(**values)


def test_environment_names(monkeypatch: pytest.MonkeyPatch, pki: Pki) -> None:
    monkeypatch.setenv("AFTERCARE_TEMPORAL_TLS", "true")
    monkeypatch.setenv("AFTERCARE_TEMPORAL_TLS_CA_FILE", str(pki.ca_file))
    monkeypatch.setenv("AFTERCARE_TEMPORAL_TLS_SERVER_NAME", "temporal.internal")
    monkeypatch.setenv("AFTERCARE_TEMPORAL_TLS_CERT_FILE", str(pki.client.cert))
    monkeypatch.setenv("AFTERCARE_TEMPORAL_TLS_KEY_FILE", str(pki.client.key))
    monkeypatch.setenv("AFTERCARE_TEMPORAL_API_KEY", "key-from-env")
    loaded = settings()
    assert loaded.temporal_tls is True
    assert loaded.temporal_tls_ca_file == pki.ca_file
    assert loaded.temporal_tls_server_name == "temporal.internal"
    assert loaded.temporal_tls_cert_file == pki.client.cert
    assert loaded.temporal_tls_key_file == pki.client.key
    assert loaded.temporal_api_key is not None
    # A repr of the settings (a log line, an error report) keeps the key and PEM out.
    assert "key-from-env" not in repr(loaded)


async def test_connect_fails_on_a_bad_file_without_retrying(tmp_path: Path) -> None:
    config = settings(
        state_dir=tmp_path,
        # Nothing listens here either: a retry loop would spin for the whole wait.
        temporal_address="127.0.0.1:1",
        temporal_tls_ca_file=tmp_path / "missing.pem",
    )
    started = time.monotonic()
    with pytest.raises(TemporalConfigError, match="AFTERCARE_TEMPORAL_TLS_CA_FILE: cannot read"):
        await connect(config, wait=timedelta(seconds=60), data_converter=DataConverter.default)
    assert time.monotonic() - started < 5
