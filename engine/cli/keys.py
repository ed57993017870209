"""``aftercare keys ...``: create, list and revoke API keys (straight in the database)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, TypeVar

import typer
from sqlalchemy.exc import DBAPIError

from engine.access.api_keys import ApiKeyInfo, ApiKeyNotFound, ApiKeyStore, InvalidKeyRequest
from engine.access.scopes import Scope
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.settings import Settings

keys_app = typer.Typer(
    help="API keys of the gRPC API (stored hashed; the key itself is shown once).",
    no_args_is_help=True,
)

Result = TypeVar("Result")


def _with_store(work: Callable[[ApiKeyStore], Awaitable[Result]]) -> Result:
    async def main() -> Result:
        engine = create_engine(Settings().resolved_database_url)
        try:
            return await work(ApiKeyStore(create_session_factory(engine)))
        finally:
            await engine.dispose()

    try:
        return asyncio.run(main())
    except InvalidKeyRequest as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(code=2) from None
    except ApiKeyNotFound as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(code=1) from None
    except DBAPIError as err:
        # Most likely a database that was never migrated; the URL is not shown.
        typer.echo(
            f"database error ({type(err.orig).__name__}): is it migrated? "
            "Run `aftercare db upgrade`.",
            err=True,
        )
        raise typer.Exit(code=1) from None


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if value else "-"


def _describe(key: ApiKeyInfo) -> str:
    state = f"revoked {_when(key.revoked_at)}" if key.revoked else "active"
    return (
        f"{key.id}  {key.name!r}  scopes={','.join(sorted(key.scopes))}  "
        f"created {_when(key.created_at)}  last used {_when(key.last_used_at)}  {state}"
    )


@keys_app.command("create")
def create(
    name: Annotated[str, typer.Option("--name", help="Who or what uses the key.")],
    scope: Annotated[
        list[str] | None,
        typer.Option("--scope", help=f"Repeat for several: {', '.join(s.value for s in Scope)}."),
    ] = None,
) -> None:
    """Create a key and print it once (stdout: the key alone, for scripts)."""
    created = _with_store(lambda store: store.create(name, scope or []))
    typer.echo(created.token)
    typer.echo(
        f"created {_describe(created.info)}\n"
        "Keep the key now: it is stored hashed and cannot be shown again.",
        err=True,
    )


@keys_app.command("list")
def list_keys(
    active: Annotated[bool, typer.Option("--active", help="Leave out revoked keys.")] = False,
) -> None:
    """List keys (ids, names, scopes, dates; never the keys themselves)."""
    keys = _with_store(lambda store: store.list_keys(include_revoked=not active))
    for key in keys:
        typer.echo(_describe(key))
    if not keys:
        typer.echo("no API keys", err=True)


@keys_app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(metavar="ID", help="The id `keys list` shows.")],
) -> None:
    """Revoke a key: calls with it fail once the API's key cache expires (seconds)."""
    key = _with_store(lambda store: store.revoke(key_id))
    typer.echo(_describe(key))
