"""Connecting to a secured Temporal for real: Debian's nginx terminates TLS (mutual TLS,
an API key checked as Temporal Cloud checks one) in front of the dev server, with
certificates made by trustme. Nothing here is mocked: each refusal is the proxy's."""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from temporalio import workflow
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from engine.devstack.temporal_server import TemporalDevServer
from engine.platform.settings import Settings
from engine.platform.temporal.connection import TemporalConfigError, connect
from tests.support.grpc_tls_proxy import OTHER_NAME, Pki, TlsProxy, grpc_tls_proxy, make_pki
from tests.support.net import free_port

API_KEY = f"aftercare-test-key-{uuid.uuid4().hex}"
# Any refusal must come at once, not after the wait given for a server still starting.
LONG_WAIT = timedelta(seconds=60)
PROMPTLY = 10.0


@workflow.defn
class Greet:
    @workflow.run
    async def run(self, name: str) -> str:
        return f"hello {name}"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def proxy(
    temporal_server: TemporalDevServer, pki: Pki, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TlsProxy]:
    with grpc_tls_proxy(
        tmp_path_factory.mktemp("nginx"), temporal_server.address, pki, API_KEY
    ) as running:
        yield running


def settings(tmp_path: Path, address: str, **values: Any) -> Settings:
    return Settings(_env_file=None, state_dir=tmp_path, temporal_address=address, **values)


async def connected(config: Settings, wait: timedelta = timedelta(0)) -> Client:
    # The default converter: what is under test is the transport, not the codec.
    return await connect(config, wait=wait, data_converter=DataConverter.default)


async def refusal_of(config: Settings) -> str:
    """The message connect fails with, checking it failed without waiting."""
    started = time.monotonic()
    with pytest.raises(TemporalConfigError) as raised:
        await connected(config, wait=LONG_WAIT)
    assert time.monotonic() - started < PROMPTLY, "a refusal was retried"
    return str(raised.value)


async def namespace_state(client: Client) -> int:
    answer = await client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace=client.namespace)
    )
    return answer.namespace_info.state


async def test_tls_end_to_end(proxy: TlsProxy, pki: Pki, tmp_path: Path) -> None:
    client = await connected(settings(tmp_path, proxy.tls, temporal_tls_ca_file=pki.ca_file))
    assert await namespace_state(client) == 1  # NAMESPACE_STATE_REGISTERED
    handle = await client.start_workflow(
        Greet.run, "tls", id=f"tls-{uuid.uuid4().hex}", task_queue="nobody-polls"
    )
    assert (await handle.describe()).status is not None
    await handle.terminate()


async def test_mutual_tls_worker_polls_through_the_proxy(
    proxy: TlsProxy, pki: Pki, tmp_path: Path
) -> None:
    config = settings(
        tmp_path,
        proxy.mutual,
        temporal_tls_ca_file=pki.ca_file,
        temporal_tls_cert_file=pki.client.cert,
        temporal_tls_key_file=pki.client.key,
    )
    client = await connected(config)
    queue = f"mtls-{uuid.uuid4().hex[:8]}"
    # Unsandboxed: the sandbox would re-import this module, and the transport is
    # what is under test. A build id given: the SDK's default hashes every loaded
    # module, seconds of a test's time.
    async with Worker(
        client,
        task_queue=queue,
        workflows=[Greet],
        workflow_runner=UnsandboxedWorkflowRunner(),
        build_id="tls-test",
    ):
        result = await client.execute_workflow(
            Greet.run, "mtls", id=f"mtls-{uuid.uuid4().hex}", task_queue=queue
        )
    assert result == "hello mtls"
    # The worker's polls went through nginx, with the client certificate checked.
    access_log = (proxy.error_log.parent / "access.log").read_text()
    assert "/temporal.api.workflowservice.v1.WorkflowService/PollWorkflowTaskQueue" in access_log


async def test_mutual_tls_from_pem_text(proxy: TlsProxy, pki: Pki, tmp_path: Path) -> None:
    # As a one-line secret store hands it over: line breaks written as \n.
    one_line_key = pki.client.key.read_text().strip().replace("\n", "\\n")
    config = settings(
        tmp_path,
        proxy.mutual,
        temporal_tls_ca_file=pki.ca_file,
        temporal_tls_cert=SecretStr(pki.client.cert.read_text()),
        temporal_tls_key=SecretStr(one_line_key),
    )
    assert await namespace_state(await connected(config)) == 1


async def test_mutual_tls_refuses_a_client_without_certificate(
    proxy: TlsProxy, pki: Pki, tmp_path: Path
) -> None:
    message = await refusal_of(settings(tmp_path, proxy.mutual, temporal_tls_ca_file=pki.ca_file))
    assert message.startswith(f"Temporal at {proxy.mutual} refused the connection: ")
    assert "it demands a client certificate (mutual TLS)" in message
    assert "AFTERCARE_TEMPORAL_TLS_CERT_FILE and AFTERCARE_TEMPORAL_TLS_KEY_FILE" in message


async def test_mutual_tls_refuses_a_certificate_from_another_ca(
    proxy: TlsProxy, pki: Pki, tmp_path: Path
) -> None:
    message = await refusal_of(
        settings(
            tmp_path,
            proxy.mutual,
            temporal_tls_ca_file=pki.ca_file,
            temporal_tls_cert_file=pki.stranger_client.cert,
            temporal_tls_key_file=pki.stranger_client.key,
        )
    )
    assert "the client certificate in AFTERCARE_TEMPORAL_TLS_CERT_FILE was refused" in message


async def test_wrong_ca_fails_at_once_naming_the_setting(
    proxy: TlsProxy, pki: Pki, tmp_path: Path
) -> None:
    message = await refusal_of(
        settings(tmp_path, proxy.tls, temporal_tls_ca_file=pki.stranger_ca_file)
    )
    assert message == (
        f"Temporal at {proxy.tls} refused the connection: "
        "the server's certificate is not trusted by AFTERCARE_TEMPORAL_TLS_CA_FILE"
    )


async def test_system_roots_do_not_trust_a_private_ca(proxy: TlsProxy, tmp_path: Path) -> None:
    message = await refusal_of(settings(tmp_path, proxy.tls, temporal_tls=True))
    assert "not trusted by the system's root certificates" in message
    assert "set AFTERCARE_TEMPORAL_TLS_CA_FILE" in message


async def test_server_name_for_a_certificate_without_the_address(
    proxy: TlsProxy, pki: Pki, tmp_path: Path
) -> None:
    message = await refusal_of(settings(tmp_path, proxy.named, temporal_tls_ca_file=pki.ca_file))
    assert (
        f"not valid for 127.0.0.1 (it names {OTHER_NAME}): "
        "set AFTERCARE_TEMPORAL_TLS_SERVER_NAME" in message
    )
    named = settings(
        tmp_path,
        proxy.named,
        temporal_tls_ca_file=pki.ca_file,
        temporal_tls_server_name=OTHER_NAME,
    )
    assert await namespace_state(await connected(named)) == 1


@pytest.mark.parametrize("port", ["api_key", "api_key_http"])
async def test_api_key_missing_wrong_and_right(
    proxy: TlsProxy, pki: Pki, tmp_path: Path, port: str
) -> None:
    address = getattr(proxy, port)
    missing = await refusal_of(settings(tmp_path, address, temporal_tls_ca_file=pki.ca_file))
    assert missing == (
        f"Temporal at {address} refused the connection: it asks for credentials: "
        "set AFTERCARE_TEMPORAL_API_KEY (or a client certificate, "
        "AFTERCARE_TEMPORAL_TLS_CERT_FILE)"
    )
    wrong = await refusal_of(
        settings(
            tmp_path,
            address,
            temporal_tls_ca_file=pki.ca_file,
            temporal_api_key=SecretStr("not-the-key"),
        )
    )
    assert wrong == (
        f"Temporal at {address} refused the connection: "
        "the API key in AFTERCARE_TEMPORAL_API_KEY was refused"
    )
    assert API_KEY not in wrong
    right = settings(
        tmp_path, address, temporal_tls_ca_file=pki.ca_file, temporal_api_key=SecretStr(API_KEY)
    )
    client = await connected(right)
    # Every call carries the key, not only the connection's first.
    assert await namespace_state(client) == 1


async def test_tls_client_at_a_plaintext_server(
    temporal_server: TemporalDevServer, pki: Pki, tmp_path: Path
) -> None:
    message = await refusal_of(
        settings(tmp_path, temporal_server.address, temporal_tls_ca_file=pki.ca_file)
    )
    assert message.endswith("it does not answer TLS at this address (AFTERCARE_TEMPORAL_TLS is on)")


async def test_a_server_not_up_yet_is_still_waited_for(pki: Pki, tmp_path: Path) -> None:
    config = settings(tmp_path, f"127.0.0.1:{free_port()}", temporal_tls_ca_file=pki.ca_file)
    started = time.monotonic()
    with pytest.raises(ConnectionError) as raised:
        await connected(config, wait=timedelta(seconds=1.5))
    assert not isinstance(raised.value, TemporalConfigError)
    assert time.monotonic() - started >= 1.4
    assert str(raised.value).startswith(f"cannot reach Temporal at {config.temporal_address}: ")


async def test_the_worker_process_stops_at_start(proxy: TlsProxy, pki: Pki, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AFTERCARE_")}
    env |= {
        # The deployment's secrets, which a worker checks before it connects.
        "AFTERCARE_SECRET_KEY": secrets.token_urlsafe(48),
        "AFTERCARE_CODEC_KEYS": f"k-tls:{base64.b64encode(secrets.token_bytes(32)).decode()}",
        "AFTERCARE_STATE_DIR": str(tmp_path),
        "AFTERCARE_TEMPORAL_ADDRESS": proxy.tls,
        "AFTERCARE_TEMPORAL_TLS_CA_FILE": str(pki.stranger_ca_file),
        "AFTERCARE_LOG_FORMAT": "console",
    }
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "aftercare"),
        "worker",
        env=env,
        cwd=tmp_path,  # no developer's .env
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    # The worker waits a minute for a server that is not up; a refusal ends it now.
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=45)
    assert process.returncode != 0
    assert (
        f"Temporal at {proxy.tls} refused the connection: the server's certificate is not "
        "trusted by AFTERCARE_TEMPORAL_TLS_CA_FILE"
    ) in stderr.decode()
