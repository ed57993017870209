"""``aftercare db ...``: migrate, back up and restore the service's database, and move
every customer key under the current master key.

A restore brings back the customers erased since the backup was made (their data
keys included); it therefore re-applies every erasure in the erasure journal
(``AFTERCARE_ERASURE_JOURNAL_URL``), which is kept apart from the database and not
overwritten by the restore. Before it replaces the database it also journals the
erasure marks of the database it replaces, so erasures from before the journal
existed survive the restore too.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.exc import DBAPIError

from engine.cli.configuration import CONFIGURATION_ERROR, load_settings
from engine.customers.erasure import RecipientHasher
from engine.customers.erasure_replay import ErasureReplay, ReappliedErasures
from engine.platform.codec.keys import KeyringError
from engine.platform.codec.runtime import customer_keys_for, erasure_marks_for, require_secrets
from engine.platform.database.backup import BackupError, Manifest, back_up, restore
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.database.erasure_journal import (
    ErasureJournalError,
    JournalEntry,
    check_apart,
    erasure_journal_for,
)
from engine.platform.database.migrate import upgrade_database
from engine.platform.links.secret import secret_key_for
from engine.platform.secret_values import MissingSecret
from engine.platform.settings import Settings

db_app = typer.Typer(help="Aftercare's own database.", no_args_is_help=True)


@dataclass(frozen=True)
class Restored:
    manifest: Manifest
    # Marks of the replaced database journaled before it was replaced (None: unreadable).
    marks_journaled: int | None
    erasures: ReappliedErasures


async def journal_marks_of(settings: Settings) -> int:
    """Journal every erasure mark the configured database holds; how many it holds."""
    engine = create_engine(settings.resolved_database_url)
    journal = erasure_journal_for(settings)
    try:
        async with engine.connect() as connection:
            marks = await erasure_marks_for(settings).recorded(connection)
        await journal.record_many(JournalEntry(digest, at) for digest, at in marks)
        return len(marks)
    finally:
        await journal.aclose()
        await engine.dispose()


async def reapply_erasures(settings: Settings) -> ReappliedErasures:
    """Every journaled erasure, done again on the configured database."""
    engine = create_engine(settings.resolved_database_url)
    journal = erasure_journal_for(settings)
    keys = customer_keys_for(settings)
    try:
        replay = ErasureReplay(
            sessions=create_session_factory(engine),
            marks=erasure_marks_for(settings),
            keys=keys,
            hasher=RecipientHasher(secret_key_for(settings)),
        )
        return await replay.reapply(await journal.entries())
    finally:
        await keys.aclose()
        await journal.aclose()
        await engine.dispose()


def restore_database(settings: Settings, backup: Path) -> Restored:
    """Restore ``backup`` into the configured database, migrate it, and re-apply the
    journaled erasures. Raises BackupError (nothing changed) for a backup that does
    not fit, MissingSecret without the keys the erasures need."""
    require_secrets(settings)  # before anything changes: the replay needs them
    check_apart(settings.resolved_erasure_journal_url, settings.resolved_database_url)
    try:
        journaled: int | None = asyncio.run(journal_marks_of(settings))
    except DBAPIError:
        journaled = None  # a database lost or never migrated: the journal has to do
    manifest = restore(settings.resolved_database_url, backup)
    return Restored(manifest, journaled, asyncio.run(reapply_erasures(settings)))


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(code=code)


@db_app.command("upgrade")
def upgrade(revision: str = typer.Argument("head")) -> None:
    """Apply database migrations up to REVISION."""
    settings = load_settings()
    upgrade_database(settings.resolved_database_url, revision)
    typer.echo(f"database at revision {revision}")


@db_app.command("backup")
def backup_command(
    target: Annotated[Path, typer.Argument(metavar="FILE", help="The backup file to write.")],
) -> None:
    """Back up the database into FILE (SQLite: online, while the service runs;
    PostgreSQL: pg_dump). Keep it as safe as the database: it holds personal data."""
    settings = load_settings()
    try:
        manifest = back_up(settings.resolved_database_url, target)
    except BackupError as err:
        raise _fail(f"no backup made: {err}") from None
    typer.echo(
        f"backed up the {manifest.database} database at revision {manifest.revision} "
        f"into {target} ({manifest.created_at:%Y-%m-%d %H:%M:%S} UTC)"
    )


@db_app.command("restore")
def restore_command(
    source: Annotated[Path, typer.Argument(metavar="FILE", help="A file `db backup` wrote.")],
    yes: Annotated[
        bool, typer.Option("--yes", help="Do not ask: the database's contents are replaced.")
    ] = False,
) -> None:
    """Replace the database with a backup, migrate it, and erase again every customer
    erased since (from the erasure journal). Stop the service's processes first."""
    settings = load_settings()
    if not yes:
        typer.confirm(f"Replace everything in the configured database with {source}?", abort=True)
    try:
        restored = restore_database(settings, source)
    except (MissingSecret, ErasureJournalError) as err:
        raise _fail(str(err), CONFIGURATION_ERROR) from None
    except BackupError as err:
        raise _fail(f"nothing restored: {err}") from None
    manifest, erasures = restored.manifest, restored.erasures
    if restored.marks_journaled is None:
        typer.echo(
            "warning: the database being replaced could not be read; its erasure marks "
            "were not journaled (the journal's entries were re-applied)",
            err=True,
        )
    typer.echo(
        f"restored the {manifest.database} backup of "
        f"{manifest.created_at:%Y-%m-%d %H:%M:%S} UTC (revision {manifest.revision}) "
        "and migrated it to this release's schema; "
        f"erasure journal: {erasures.journaled} erasures, {erasures.marks_put_back} marks "
        f"put back, {erasures.customers_erased} customers erased again, "
        f"{erasures.keys_destroyed} data keys destroyed"
    )


@db_app.command("rewrap-keys")
def rewrap_keys() -> None:
    """Wrap every customer data key under the current master key (the first of
    AFTERCARE_CODEC_KEYS), after a rotation; then older master keys wrap none."""
    settings = load_settings()

    async def main() -> tuple[int, str]:
        keys = customer_keys_for(settings)
        try:
            return await keys.rewrap(), keys.keyring.current_key_id
        finally:
            await keys.aclose()

    try:
        moved, current = asyncio.run(main())
    except MissingSecret as err:
        raise _fail(str(err), CONFIGURATION_ERROR) from None
    except KeyringError as err:
        raise _fail(f"nothing rewrapped: {err}") from None
    except DBAPIError as err:
        raise _fail(
            f"database error ({type(err.orig).__name__}): is it migrated? "
            "Run `aftercare db upgrade`."
        ) from None
    typer.echo(f"rewrapped {moved} customer keys; every one is now wrapped under {current}")
