"""How the CLI reaches the API: address, API key and TLS from settings.

The key comes from ``--api-key``, else ``AFTERCARE_API_KEY``, else the file the
dev stack keeps (``state_dir/api-key``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer

from clients import AftercareClient, AftercareError, InvalidRequestError
from engine.access.tls import client_tls_files, client_uses_tls
from engine.devstack.dev_key import read_dev_key
from engine.platform.settings import Settings

Result = TypeVar("Result")

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


def call_api(
    work: Callable[[AftercareClient], Awaitable[Result]], api_key: str | None = None
) -> Result:
    """Run ``work`` with a client of the configured API; a refusal is printed (each
    bad field on a line of its own) and ends the command: exit 2 for bad input, 1
    for anything else the API answered."""

    async def main() -> Result:
        async with api_client(Settings(), api_key) as client:
            return await work(client)

    try:
        return asyncio.run(main())
    except InvalidRequestError as err:
        for field, problem in err.fields.items():
            typer.echo(f"{field}: {problem}", err=True)
        raise typer.Exit(code=2) from None
    except AftercareError as err:
        typer.echo(f"{err.code.name}: {err.message}", err=True)
        raise typer.Exit(code=1) from None
