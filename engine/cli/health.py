"""``aftercare health api|http|codec``: is the part running in this container serving?

The probe a container's health check runs, on the part's own settings: the gRPC API
through the standard health service, with TLS (and a client certificate for mutual
TLS) when the API has it; the HTTP app through ``/healthz``; the codec server by
asking it to decode without the token (a 401 means it is up and guarding).

With TLS, the probe trusts ``AFTERCARE_GRPC_CA_FILE`` when set, else the server's own
certificate (enough for a self-signed one), and expects the name that certificate
carries, whatever address it dials.
"""

from __future__ import annotations

import asyncio
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import grpc
import httpx
import typer
from cryptography import x509
from grpc_health.v1 import health_pb2, health_pb2_grpc

from engine.access.tls import TlsConfigError, client_tls_files, client_uses_tls
from engine.platform.settings import Settings

PROBE_TIMEOUT_SECONDS = 3.0


class Part(StrEnum):
    api = "api"
    http = "http"
    codec = "codec"


def _local(host: str) -> str:
    """The address a probe in the same container dials for a server bound to ``host``."""
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host


def certificate_name(chain: Path) -> str | None:
    """The first DNS name the server certificate (the chain's first) is issued for."""
    certificate = x509.load_pem_x509_certificate(chain.read_bytes())
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return None
    dns = names.value.get_values_for_type(x509.DNSName)
    return dns[0] if dns else None


def _api_channel(settings: Settings, target: str) -> grpc.aio.Channel:
    if not client_uses_tls(settings):
        return grpc.aio.insecure_channel(target)
    roots, chain, key = client_tls_files(settings)
    options: list[tuple[str, str]] = []
    if settings.grpc_tls_cert is not None:
        if roots is None:
            roots = settings.grpc_tls_cert.read_bytes()
        name = certificate_name(settings.grpc_tls_cert)
        if name:
            options.append(("grpc.ssl_target_name_override", name))
    credentials = grpc.ssl_channel_credentials(
        root_certificates=roots, private_key=key, certificate_chain=chain
    )
    return grpc.aio.secure_channel(target, credentials, options=options)


async def probe_api(settings: Settings) -> str | None:
    """None when the API answers SERVING; otherwise what is wrong."""
    target = f"{_local(settings.grpc_host)}:{settings.grpc_port}"
    try:
        channel = _api_channel(settings, target)
    except (TlsConfigError, OSError, ValueError) as err:
        return f"cannot set up the probe's TLS: {err}"
    async with channel:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=PROBE_TIMEOUT_SECONDS
            )
        except grpc.aio.AioRpcError as err:
            return f"{target}: {err.code().name}: {err.details()}"
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        return f"{target}: {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}"
    return None


def probe_http(settings: Settings) -> str | None:
    url = f"http://{_local(settings.http_host)}:{settings.http_port}/healthz"
    try:
        answer = httpx.get(url, timeout=PROBE_TIMEOUT_SECONDS)
    except httpx.HTTPError as err:
        return f"{url}: {err}"
    return None if answer.status_code == 200 else f"{url}: HTTP {answer.status_code}"


def probe_codec(settings: Settings) -> str | None:
    url = f"http://{_local(settings.codec_host)}:{settings.codec_port}/decode"
    try:
        answer = httpx.post(url, json={"payloads": []}, timeout=PROBE_TIMEOUT_SECONDS)
    except httpx.HTTPError as err:
        return f"{url}: {err}"
    # Without the token the codec server refuses: that refusal is the sign of life.
    return None if answer.status_code == 401 else f"{url}: HTTP {answer.status_code}"


def health_command(
    part: Annotated[Part, typer.Argument(help="The part running here: api, http or codec.")],
) -> None:
    """Exit 0 if the part on this machine serves (a container health check), else 1."""
    settings = Settings()
    if part is Part.api:
        problem = asyncio.run(probe_api(settings))
    elif part is Part.http:
        problem = probe_http(settings)
    else:
        problem = probe_codec(settings)
    if problem:
        typer.echo(f"unhealthy: {problem}", err=True)
        raise typer.Exit(code=1)
    typer.echo("serving")
