"""TLS, mutual TLS and the message size limit of the gRPC API, for real: certificates
made in the test, a real server, real clients (AftercareClient, as services use it)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from clients import AftercareClient, AftercareError, AuthenticationError, ServiceUnavailableError
from engine.access.auth import authenticator_for
from engine.access.tls import TlsConfigError, server_credentials
from engine.cli.samples import sample_order
from engine.journeys.directory import JourneyDirectory
from engine.platform.database.migrate import upgrade_database
from engine.platform.settings import Settings
from engine.processes.api import build_server
from engine.processes.dev_stack import with_dev_secrets
from tests.support.api_keys import all_scopes_key
from tests.support.certificates import CertificateAuthority, Issued
from tests.support.databases import sqlite_url
from tests.support.ids import new_order_id
from tests.support.net import free_port


@dataclass(frozen=True)
class Pki:
    ca: CertificateAuthority
    server: Issued
    client: Issued
    # A client certificate from a CA the server does not trust.
    stranger: Issued
    stranger_ca: CertificateAuthority


@dataclass(frozen=True)
class Parts:
    settings: Settings
    api_key: str
    pki: Pki


@pytest.fixture(scope="module")
async def parts(tmp_path_factory: pytest.TempPathFactory) -> Parts:
    folder = tmp_path_factory.mktemp("transport")
    ca = CertificateAuthority(folder / "ca")
    stranger_ca = CertificateAuthority(folder / "stranger", name="Someone Else CA")
    pki = Pki(
        ca=ca,
        server=ca.issue("server", server=True),
        client=ca.issue("client", server=False),
        stranger=stranger_ca.issue("stranger", server=False),
        stranger_ca=stranger_ca,
    )
    database_url = sqlite_url(folder)
    upgrade_database(database_url)
    settings = Settings(
        _env_file=None,
        state_dir=folder,
        temporal_address="unused:0",
        task_queue=f"transport-{uuid.uuid4().hex[:8]}",
        database_url=database_url,
    )
    settings = with_dev_secrets(settings)  # kept under the state dir, as `aftercare run` does
    return Parts(settings, await all_scopes_key(database_url), pki)


@asynccontextmanager
async def serving(
    temporal: Client, parts: Parts, **overrides: Any
) -> AsyncIterator[tuple[str, Settings]]:
    settings = parts.settings.model_copy(update={"grpc_port": free_port(), **overrides})
    async with authenticator_for(settings) as authenticator:
        server = build_server(
            JourneyDirectory(temporal, settings.task_queue),
            settings.grpc_target,
            authenticator=authenticator,
            settings=settings,
        )
        await server.start()
        try:
            yield settings.grpc_target, settings
        finally:
            await server.stop(grace_seconds=1)


async def journey_exists(temporal: Client, order_id: str) -> bool:
    try:
        await temporal.get_workflow_handle(f"order-{order_id}").describe()
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
        return False
    return True


async def start(client: AftercareClient, temporal: Client) -> None:
    """Start a journey through ``client`` and check that it exists."""
    order_id = new_order_id("TLS")
    started = await client.start_journey(sample_order(order_id))
    assert started.created
    assert await journey_exists(temporal, order_id)


async def test_tls_serves_a_client_that_trusts_the_ca(
    temporal_client: Client, parts: Parts
) -> None:
    pki = parts.pki
    async with serving(
        temporal_client, parts, grpc_tls_cert=pki.server.cert, grpc_tls_key=pki.server.key
    ) as (target, _):
        async with AftercareClient(
            target, api_key=parts.api_key, root_certificates=pki.ca.root.cert_pem
        ) as client:
            await start(client, temporal_client)

        # The key is still required over TLS.
        async with AftercareClient(target, root_certificates=pki.ca.root.cert_pem) as anonymous:
            with pytest.raises(AuthenticationError, match="missing API key"):
                await anonymous.start_journey(sample_order(new_order_id("TLS")))

        # A plaintext client, or one that does not trust the server's CA, gets nowhere.
        async with AftercareClient(target, api_key=parts.api_key) as plaintext:
            with pytest.raises(ServiceUnavailableError):
                await plaintext.start_journey(sample_order(new_order_id("TLS")))
        async with AftercareClient(
            target, api_key=parts.api_key, root_certificates=pki.stranger_ca.root.cert_pem
        ) as distrustful:
            with pytest.raises(ServiceUnavailableError):
                await distrustful.start_journey(sample_order(new_order_id("TLS")))


async def test_mutual_tls_refuses_clients_without_a_certificate_from_the_ca(
    temporal_client: Client, parts: Parts
) -> None:
    pki = parts.pki
    async with serving(
        temporal_client,
        parts,
        grpc_tls_cert=pki.server.cert,
        grpc_tls_key=pki.server.key,
        grpc_tls_client_ca=pki.ca.root.cert,
    ) as (target, _):
        async with AftercareClient(
            target,
            api_key=parts.api_key,
            root_certificates=pki.ca.root.cert_pem,
            certificate_chain=pki.client.cert_pem,
            private_key=pki.client.key_pem,
        ) as client:
            await start(client, temporal_client)

        refused_order = new_order_id("MTLS")
        async with AftercareClient(
            target, api_key=parts.api_key, root_certificates=pki.ca.root.cert_pem
        ) as without_cert:
            with pytest.raises(ServiceUnavailableError):
                await without_cert.start_journey(sample_order(refused_order))
        async with AftercareClient(
            target,
            api_key=parts.api_key,
            root_certificates=pki.ca.root.cert_pem,
            certificate_chain=pki.stranger.cert_pem,
            private_key=pki.stranger.key_pem,
        ) as stranger:
            with pytest.raises(ServiceUnavailableError):
                await stranger.start_journey(sample_order(refused_order))
        assert not await journey_exists(temporal_client, refused_order)


async def test_messages_over_the_limit_are_refused_and_start_nothing(
    temporal_client: Client, parts: Parts
) -> None:
    limit = 64 * 1024
    async with serving(temporal_client, parts, grpc_max_message_bytes=limit) as (target, _):
        order_id = new_order_id("BIG")
        order = sample_order(order_id)
        order.items[0].name = "x" * (limit + 1)
        async with AftercareClient(target, api_key=parts.api_key) as client:
            with pytest.raises(AftercareError) as refused:
                await client.start_journey(order)
            assert refused.value.code.name == "RESOURCE_EXHAUSTED"
            assert not await journey_exists(temporal_client, order_id)
            # Under the limit, the same server serves.
            await start(client, temporal_client)


def test_tls_settings_come_in_pairs(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="grpc_tls_cert and grpc_tls_key"):
        Settings(_env_file=None, grpc_tls_cert=tmp_path / "server.crt")
    with pytest.raises(ValidationError, match="grpc_tls_client_ca"):
        Settings(_env_file=None, grpc_tls_client_ca=tmp_path / "ca.crt")
    with pytest.raises(ValidationError, match="grpc_client_cert and grpc_client_key"):
        Settings(_env_file=None, grpc_client_key=tmp_path / "client.key")


def test_an_unreadable_certificate_names_the_setting(tmp_path: Path, parts: Parts) -> None:
    missing = Settings(
        _env_file=None, grpc_tls_cert=tmp_path / "nope.crt", grpc_tls_key=parts.pki.server.key
    )
    with pytest.raises(TlsConfigError, match="AFTERCARE_GRPC_TLS_CERT: cannot read"):
        server_credentials(missing)
    not_pem = tmp_path / "empty.key"
    not_pem.write_text("hello")
    garbage = Settings(_env_file=None, grpc_tls_cert=parts.pki.server.cert, grpc_tls_key=not_pem)
    with pytest.raises(TlsConfigError, match=r"AFTERCARE_GRPC_TLS_KEY: .* holds no PEM data"):
        server_credentials(garbage)


def test_the_client_rejects_half_a_client_certificate(parts: Parts) -> None:
    with pytest.raises(ValueError, match="certificate_chain and private_key"):
        AftercareClient(certificate_chain=parts.pki.client.cert_pem)


async def test_plaintext_is_the_default(temporal_client: Client, parts: Parts) -> None:
    async with (
        serving(temporal_client, parts) as (target, settings),
        AftercareClient(target, api_key=parts.api_key) as client,
    ):
        assert settings.grpc_tls_cert is None
        await start(client, temporal_client)
