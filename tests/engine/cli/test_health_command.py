"""``aftercare health api|http|codec``, the probe docker-compose.yml runs in each
container, against the real servers: the API in plaintext, with TLS on a self-signed
certificate issued for another name than the address probed, with a CA's certificate,
and with mutual TLS; the HTTP app; the codec server."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from temporalio.client import Client

from engine.access.auth import authenticator_for
from engine.journeys.directory import JourneyDirectory
from engine.platform.codec.runtime import customer_keys_for
from engine.platform.database.migrate import upgrade_database
from engine.platform.http_server import serve_http
from engine.platform.settings import Settings
from engine.processes.api import ApiServer, build_server
from engine.processes.codec import codec_app
from engine.processes.dev_stack import with_dev_secrets
from engine.processes.http import http_app
from tests.support.certificates import CertificateAuthority
from tests.support.databases import sqlite_url
from tests.support.net import free_port

AFTERCARE = Path(sys.executable).parent / "aftercare"
# What the self-signed certificate is issued for: not the address the probe dials.
SERVER_NAME = "api.aftercare.internal"


async def health(part: str, **variables: str) -> tuple[int, str]:
    """``aftercare health PART`` on nothing but ``variables``: exit code and output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AFTERCARE_")}
    env.update(variables)
    process = await asyncio.create_subprocess_exec(
        str(AFTERCARE),
        "health",
        part,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, out.decode(errors="replace")


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for SERVER_NAME only, signed by its own key (as ``openssl req
    -x509`` makes one): its chain and key as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SERVER_NAME)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(SERVER_NAME)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    chain, private = folder / "self.crt", folder / "self.key"
    chain.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return chain, private


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    database = sqlite_url(tmp_path)
    upgrade_database(database)
    return with_dev_secrets(
        Settings(
            _env_file=None,
            state_dir=tmp_path,
            database_url=database,
            task_queue=f"health-{uuid.uuid4().hex[:8]}",
            grpc_host="0.0.0.0",  # as in a container: the probe dials 127.0.0.1
            grpc_port=free_port(),
        )
    )


@asynccontextmanager
async def api(temporal: Client, settings: Settings) -> AsyncIterator[ApiServer]:
    async with authenticator_for(settings) as authenticator:
        server = build_server(
            JourneyDirectory(temporal, settings.task_queue),
            settings.grpc_target,
            authenticator=authenticator,
            settings=settings,
        )
        await server.start()
        try:
            yield server
        finally:
            await server.stop(grace_seconds=0)


def tls_variables(settings: Settings, **files: Path) -> dict[str, str]:
    """The API container's environment: its port, and its TLS files."""
    return {
        "AFTERCARE_GRPC_HOST": settings.grpc_host,
        "AFTERCARE_GRPC_PORT": str(settings.grpc_port),
        **{f"AFTERCARE_{name.upper()}": str(path) for name, path in files.items()},
    }


async def test_the_api_probe_reads_the_health_service_and_sees_it_drain(
    temporal_client: Client, settings: Settings
) -> None:
    env = tls_variables(settings)
    async with api(temporal_client, settings) as server:
        assert await health("api", **env) == (0, "serving\n")
        await server.health.enter_graceful_shutdown()
        code, out = await health("api", **env)
        assert code == 1
        assert "NOT_SERVING" in out
    code, out = await health("api", **env)  # nobody listens any more
    assert code == 1
    assert "unhealthy" in out
    assert "UNAVAILABLE" in out


async def test_the_api_probe_speaks_tls_to_a_self_signed_certificate_of_another_name(
    temporal_client: Client, settings: Settings, tmp_path: Path
) -> None:
    chain, key = self_signed(tmp_path / "tls")
    tls = settings.model_copy(update={"grpc_tls_cert": chain, "grpc_tls_key": key})
    env = tls_variables(tls, grpc_tls_cert=chain, grpc_tls_key=key)
    async with api(temporal_client, tls):
        assert await health("api", **env) == (0, "serving\n")
        # A plaintext probe (what compose ran before) gets nowhere with TLS on.
        code, out = await health("api", **tls_variables(tls))
        assert code == 1
        assert "UNAVAILABLE" in out


async def test_the_api_probe_trusts_the_ca_file_and_presents_a_client_certificate(
    temporal_client: Client, settings: Settings, tmp_path: Path
) -> None:
    ca = CertificateAuthority(tmp_path / "ca")
    server, client = ca.issue("server", server=True), ca.issue("probe", server=False)
    mutual = settings.model_copy(
        update={
            "grpc_tls_cert": server.cert,
            "grpc_tls_key": server.key,
            "grpc_tls_client_ca": ca.root.cert,
        }
    )
    server_files = {
        "grpc_tls_cert": server.cert,
        "grpc_tls_key": server.key,
        "grpc_tls_client_ca": ca.root.cert,
        "grpc_ca_file": ca.root.cert,
    }
    async with api(temporal_client, mutual):
        env = tls_variables(
            mutual, **server_files, grpc_client_cert=client.cert, grpc_client_key=client.key
        )
        assert await health("api", **env) == (0, "serving\n")
        # Without a client certificate the server turns the probe away.
        code, out = await health("api", **tls_variables(mutual, **server_files))
        assert code == 1
        assert "unhealthy" in out


async def test_the_http_and_codec_probes(settings: Settings) -> None:
    http_port, codec_port = free_port(), free_port()
    served = settings.model_copy(
        update={"http_host": "0.0.0.0", "http_port": http_port, "codec_port": codec_port}
    )
    env = {"AFTERCARE_HTTP_PORT": str(http_port), "AFTERCARE_CODEC_PORT": str(codec_port)}
    customer_keys = customer_keys_for(served)
    try:
        async with (
            http_app(served) as app,
            serve_http(app, "127.0.0.1", http_port),
            serve_http(codec_app(served, customer_keys), "127.0.0.1", codec_port),
        ):
            assert await health("http", **env) == (0, "serving\n")
            assert await health("codec", **env) == (0, "serving\n")
            # Each probe asks its own server: the HTTP app is no codec server.
            code, out = await health("codec", AFTERCARE_CODEC_PORT=str(http_port))
            assert code == 1
            assert "HTTP 404" in out or "HTTP 405" in out
    finally:
        await customer_keys.aclose()
    code, out = await health("http", **env)
    assert code == 1
    assert "unhealthy" in out


PROBE_ALONE = """
import sys
sys.argv = ["aftercare", "health", "--help"]
from engine.cli.entry import main
try:
    main()
except SystemExit as done:
    assert not done.code, done.code
print(sorted(name for name in sys.modules if name.startswith("engine.")))
"""


def test_the_probe_loads_without_the_other_commands() -> None:
    """A container runs it every few seconds: it must not load every command's
    modules (the database tools, replay, reports) to answer."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE_ALONE], capture_output=True, text=True, check=True
    )
    loaded = done.stdout
    assert "'engine.cli.health'" in loaded
    others = ("engine.cli.app", "engine.cli.database", "engine.journeys", "engine.insights")
    for elsewhere in others:
        assert f"'{elsewhere}" not in loaded, elsewhere
