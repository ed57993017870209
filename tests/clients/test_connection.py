"""What every call carries (the API key, a deadline) and how the client connects:
plaintext, TLS with a CA made in the test, mutual TLS, a channel of one's own, and
closing it all when the ``async with`` block ends. A call past its deadline raises
DeadlineExceededError, a call on a closed client ClientClosedError."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from aftercare.v1 import journey_pb2 as pb

from clients import (
    AftercareClient,
    AftercareError,
    ClientClosedError,
    DeadlineExceededError,
    ServiceUnavailableError,
)
from tests.clients.calls import EVERY_CALL, MethodCall
from tests.clients.conftest import API_KEY
from tests.support.certificates import CertificateAuthority, Issued
from tests.support.fake_api import FakeServer, Refusal, serve_fake_api

# --- metadata and deadline ---------------------------------------------------------


async def test_the_api_key_goes_with_every_call_as_a_bearer_token(
    fake: FakeServer, client: AftercareClient
) -> None:
    await client.get_journey("A-1001")
    await client.get_preferences("cus_42")
    assert [call.method for call in fake.api.calls] == ["GetJourney", "GetPreferences"]
    for call in fake.api.calls:
        assert call.header("authorization") == [f"Bearer {API_KEY}"]


@pytest.mark.parametrize("api_key", [None, ""])
async def test_without_an_api_key_no_authorization_is_sent(
    api_key: str | None, fake: FakeServer
) -> None:
    async with AftercareClient(fake.target, api_key=api_key) as anonymous:
        await anonymous.cancel_journey("A-1001")
    assert fake.api.calls[0].header("authorization") == []


async def test_the_default_deadline_is_ten_seconds(
    fake: FakeServer, client: AftercareClient
) -> None:
    await client.list_journeys()
    remaining = fake.api.calls[0].time_remaining
    # Sent as grpc-timeout, which the server reads back (rounded up a little).
    assert remaining == pytest.approx(10.0, abs=0.5)


@pytest.mark.parametrize("seconds", [0.75, 3.0, 45.0])
async def test_the_deadline_is_timeout_seconds(seconds: float, fake: FakeServer) -> None:
    async with AftercareClient(fake.target, timeout_seconds=seconds) as aftercare:
        await aftercare.erase_customer("cus_42")
        await aftercare.start_journey(pb.Order(order_id="A-1"))
    assert len(fake.api.calls) == 2
    for call in fake.api.calls:
        assert call.time_remaining == pytest.approx(seconds, abs=0.5)


async def test_a_call_past_its_deadline_fails_at_the_deadline(fake: FakeServer) -> None:
    fake.api.delay = 2.0
    async with AftercareClient(fake.target, timeout_seconds=0.3) as impatient:
        started = time.monotonic()
        with pytest.raises(DeadlineExceededError) as raised:
            await impatient.get_journey("A-1001")
        waited = time.monotonic() - started
    assert type(raised.value) is DeadlineExceededError
    assert isinstance(raised.value, AftercareError)
    assert raised.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert raised.value.timeout_seconds == 0.3
    assert isinstance(raised.value.__cause__, grpc.aio.AioRpcError)
    assert raised.value.__cause__.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert 0.25 < waited < 1.5


@pytest.mark.parametrize("call", EVERY_CALL, ids=str)
async def test_every_method_raises_deadline_exceeded_with_its_deadline(
    call: MethodCall, fake: FakeServer
) -> None:
    fake.api.delay = 2.0
    async with AftercareClient(fake.target, timeout_seconds=0.2) as impatient:
        with pytest.raises(DeadlineExceededError) as raised:
            await call.invoke(impatient)
    assert raised.value.timeout_seconds == 0.2
    assert [received.method for received in fake.api.calls] == [call.rpc]


async def test_a_deadline_exceeded_sent_by_the_server_carries_the_clients_deadline(
    fake: FakeServer,
) -> None:
    # The server's own bound on a handler ran out first: the status comes from it.
    fake.api.refusals["ListJourneys"] = Refusal(
        grpc.StatusCode.DEADLINE_EXCEEDED, "the handler ran past its bound"
    )
    async with AftercareClient(fake.target, timeout_seconds=7.5) as aftercare:
        with pytest.raises(DeadlineExceededError) as raised:
            await aftercare.list_journeys()
    assert raised.value.message == "the handler ran past its bound"
    assert raised.value.timeout_seconds == 7.5


@pytest.mark.parametrize("seconds", [0.0, -1.0])
def test_a_deadline_must_be_positive(seconds: float) -> None:
    with pytest.raises(ValueError, match="timeout_seconds: must be greater than 0"):
        AftercareClient("127.0.0.1:1", timeout_seconds=seconds)


@pytest.mark.parametrize(
    ("chain", "key"), [(b"-----BEGIN CERTIFICATE-----", None), (None, b"-----BEGIN KEY-----")]
)
def test_a_client_certificate_needs_its_key_and_the_other_way_round(
    chain: bytes | None, key: bytes | None
) -> None:
    with pytest.raises(ValueError, match="certificate_chain and private_key: give both or neither"):
        AftercareClient("127.0.0.1:1", certificate_chain=chain, private_key=key)


# --- closing ------------------------------------------------------------------------


async def test_leaving_the_async_with_block_closes_the_channel(fake: FakeServer) -> None:
    aftercare = AftercareClient(fake.target)
    async with aftercare as entered:
        assert entered is aftercare
        await aftercare.get_journey("A-1001")
    with pytest.raises(ClientClosedError) as raised:
        await aftercare.get_journey("A-1001")
    assert len(fake.api.calls) == 1
    assert isinstance(raised.value.__cause__, grpc.aio.UsageError)


@pytest.mark.parametrize("call", EVERY_CALL, ids=str)
async def test_every_method_of_a_closed_client_raises_client_closed(
    call: MethodCall, fake: FakeServer
) -> None:
    aftercare = AftercareClient(fake.target)
    await aftercare.close()

    with pytest.raises(ClientClosedError) as raised:
        await call.invoke(aftercare)

    assert type(raised.value) is ClientClosedError
    assert isinstance(raised.value, AftercareError)
    assert raised.value.code == grpc.StatusCode.CANCELLED
    assert str(raised.value) == "the client is closed: make a new AftercareClient"
    assert raised.value.message == str(raised.value)
    assert fake.api.calls == []


async def test_a_client_whose_own_channel_was_closed_raises_client_closed(
    fake: FakeServer,
) -> None:
    channel = grpc.aio.insecure_channel(fake.target)
    aftercare = AftercareClient(channel=channel)
    await aftercare.get_journey("A-1001")
    # Closed by whoever made it, not through the client.
    await channel.close()

    with pytest.raises(ClientClosedError):
        await aftercare.get_journey("A-1001")
    assert len(fake.api.calls) == 1


async def test_the_block_closes_the_channel_when_it_raises(fake: FakeServer) -> None:
    channel = grpc.aio.insecure_channel(fake.target)

    async def fail_inside() -> None:
        async with AftercareClient(channel=channel) as aftercare:
            await aftercare.get_journey("A-1001")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await fail_inside()
    assert channel.get_state() == grpc.ChannelConnectivity.SHUTDOWN
    assert [call.method for call in fake.api.calls] == ["GetJourney"]


async def test_a_channel_of_ones_own_is_used_as_given_and_closed_with_the_client(
    fake: FakeServer,
) -> None:
    channel = grpc.aio.insecure_channel(fake.target)
    # The target is ignored when a channel is given: nothing listens on port 1.
    async with AftercareClient("127.0.0.1:1", api_key="k1", channel=channel) as aftercare:
        await aftercare.get_journey("A-1001")
        assert channel.get_state() == grpc.ChannelConnectivity.READY
    assert fake.api.calls[0].header("authorization") == ["Bearer k1"]
    assert channel.get_state() == grpc.ChannelConnectivity.SHUTDOWN


async def test_close_closes_the_channel(fake: FakeServer) -> None:
    channel = grpc.aio.insecure_channel(fake.target)
    aftercare = AftercareClient(channel=channel)
    await aftercare.get_journey("A-1001")
    await aftercare.close()
    assert channel.get_state() == grpc.ChannelConnectivity.SHUTDOWN


# --- TLS ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca: CertificateAuthority
    server: Issued
    client: Issued
    stranger_ca: CertificateAuthority
    stranger: Issued  # a client certificate from a CA the server does not trust


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder: Path = tmp_path_factory.mktemp("client-tls")
    ca = CertificateAuthority(folder / "ca")
    stranger_ca = CertificateAuthority(folder / "stranger", name="Another CA")
    return Pki(
        ca=ca,
        server=ca.issue("server", server=True),
        client=ca.issue("billing-service", server=False),
        stranger_ca=stranger_ca,
        stranger=stranger_ca.issue("intruder", server=False),
    )


@pytest.fixture
async def tls_fake(pki: Pki) -> AsyncIterator[FakeServer]:
    credentials = grpc.ssl_server_credentials([(pki.server.key_pem, pki.server.cert_pem)])
    async with serve_fake_api(credentials) as served:
        yield served


@pytest.fixture
async def mtls_fake(pki: Pki) -> AsyncIterator[FakeServer]:
    credentials = grpc.ssl_server_credentials(
        [(pki.server.key_pem, pki.server.cert_pem)],
        root_certificates=pki.ca.root.cert_pem,
        require_client_auth=True,
    )
    async with serve_fake_api(credentials) as served:
        yield served


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_tls_with_the_servers_ca_works_and_carries_the_key(
    host: str, pki: Pki, tls_fake: FakeServer
) -> None:
    async with AftercareClient(
        f"{host}:{tls_fake.port}", api_key=API_KEY, root_certificates=pki.ca.root.cert_pem
    ) as aftercare:
        started = await aftercare.start_journey(pb.Order(order_id="A-1"))
    assert started == pb.StartJourneyResponse()
    (call,) = tls_fake.api.calls
    assert call.header("authorization") == [f"Bearer {API_KEY}"]
    # Server-side TLS only: the client showed no certificate.
    assert call.peer_names == ()


async def test_tls_true_without_roots_trusts_the_system_roots_not_a_test_ca(
    tls_fake: FakeServer,
) -> None:
    async with AftercareClient(tls_fake.target, tls=True, timeout_seconds=3) as aftercare:
        with pytest.raises(ServiceUnavailableError):
            await aftercare.get_journey("A-1001")
    assert tls_fake.api.calls == []


async def test_a_server_certificate_from_another_ca_is_refused(
    pki: Pki, tls_fake: FakeServer
) -> None:
    async with AftercareClient(
        tls_fake.target, root_certificates=pki.stranger_ca.root.cert_pem, timeout_seconds=3
    ) as aftercare:
        with pytest.raises(ServiceUnavailableError):
            await aftercare.get_journey("A-1001")
    assert tls_fake.api.calls == []


async def test_plaintext_to_a_tls_server_fails(tls_fake: FakeServer) -> None:
    async with AftercareClient(tls_fake.target, timeout_seconds=3) as aftercare:
        with pytest.raises(ServiceUnavailableError):
            await aftercare.get_journey("A-1001")
    assert tls_fake.api.calls == []


async def test_mutual_tls_presents_the_client_certificate(pki: Pki, mtls_fake: FakeServer) -> None:
    async with AftercareClient(
        mtls_fake.target,
        root_certificates=pki.ca.root.cert_pem,
        certificate_chain=pki.client.cert_pem,
        private_key=pki.client.key_pem,
    ) as aftercare:
        await aftercare.unsubscribe("cus_42")
    (call,) = mtls_fake.api.calls
    assert call.peer_names == (b"billing-service",)


@pytest.mark.parametrize("certificate", ["none", "stranger"])
async def test_mutual_tls_without_a_trusted_client_certificate_is_refused(
    certificate: str, pki: Pki, mtls_fake: FakeServer
) -> None:
    own = pki.stranger if certificate == "stranger" else None
    async with AftercareClient(
        mtls_fake.target,
        root_certificates=pki.ca.root.cert_pem,
        certificate_chain=own.cert_pem if own else None,
        private_key=own.key_pem if own else None,
        timeout_seconds=3,
    ) as aftercare:
        with pytest.raises(ServiceUnavailableError):
            await aftercare.unsubscribe("cus_42")
    assert mtls_fake.api.calls == []
