"""How the CLI reaches the API: address, API key and TLS from settings.

The key comes from ``--api-key``, else ``AFTERCARE_API_KEY``, else the file the
dev stack keeps (``state_dir/api-key``).
"""

from __future__ import annotations

from typing import Annotated

import typer

from clients import AftercareClient
from engine.access.tls import client_tls_files, client_uses_tls
from engine.devstack.dev_key import read_dev_key
from engine.platform.settings import Settings

ApiKeyOption = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        help="API key (default: AFTERCARE_API_KEY, then the dev stack's key file).",
        show_default=False,
    ),
]


def api_key_for(settings: Settings, given: str | None = None) -> str | None:
    if given:
        return given
    if settings.api_key is not None:
        return settings.api_key.get_secret_value()
    return read_dev_key(settings)


def api_client(settings: Settings, api_key: str | None = None) -> AftercareClient:
    """A client of the configured API (close it, or use it with ``async with``)."""
    key = api_key_for(settings, api_key)
    if not client_uses_tls(settings):
        return AftercareClient(settings.grpc_target, api_key=key)
    roots, chain, private_key = client_tls_files(settings)
    return AftercareClient(
        settings.grpc_target,
        api_key=key,
        tls=True,
        root_certificates=roots,
        certificate_chain=chain,
        private_key=private_key,
    )
