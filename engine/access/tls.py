"""TLS and mutual TLS for the gRPC API, from settings.

Server: ``AFTERCARE_GRPC_TLS_CERT`` (PEM chain) and ``AFTERCARE_GRPC_TLS_KEY`` turn
TLS on; ``AFTERCARE_GRPC_TLS_CLIENT_CA`` also requires every client to present a
certificate issued by that CA (mutual TLS). Clients of ours (the CLI, the demo)
connect with TLS when ``AFTERCARE_GRPC_CA_FILE`` (the roots they trust; for a
self-signed server certificate, that certificate) or the server certificate is
configured, and present ``AFTERCARE_GRPC_CLIENT_CERT`` / ``_KEY`` when set.
"""

from __future__ import annotations

from pathlib import Path

import grpc

from engine.platform.settings import Settings


class TlsConfigError(RuntimeError):
    pass


def _read(setting: str, path: Path) -> bytes:
    try:
        content = path.read_bytes()
    except OSError as err:
        raise TlsConfigError(
            f"AFTERCARE_{setting.upper()}: cannot read {path}: {err.strerror}"
        ) from None
    if b"-----BEGIN " not in content:
        raise TlsConfigError(f"AFTERCARE_{setting.upper()}: {path} holds no PEM data")
    return content


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """Credentials for ``add_secure_port``, or None when TLS is not configured."""
    if settings.grpc_tls_cert is None or settings.grpc_tls_key is None:
        return None
    chain = _read("grpc_tls_cert", settings.grpc_tls_cert)
    key = _read("grpc_tls_key", settings.grpc_tls_key)
    client_ca = (
        _read("grpc_tls_client_ca", settings.grpc_tls_client_ca)
        if settings.grpc_tls_client_ca is not None
        else None
    )
    return grpc.ssl_server_credentials(
        [(key, chain)],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )


def client_uses_tls(settings: Settings) -> bool:
    return settings.grpc_ca_file is not None or settings.grpc_tls_cert is not None


def client_tls_files(settings: Settings) -> tuple[bytes | None, bytes | None, bytes | None]:
    """``(root certificates, client certificate chain, client key)`` for a client of
    the API on these settings; no roots means the system's."""
    roots: bytes | None = None
    if settings.grpc_ca_file is not None:
        roots = _read("grpc_ca_file", settings.grpc_ca_file)
    chain = key = None
    if settings.grpc_client_cert is not None and settings.grpc_client_key is not None:
        chain = _read("grpc_client_cert", settings.grpc_client_cert)
        key = _read("grpc_client_key", settings.grpc_client_key)
    return roots, chain, key
