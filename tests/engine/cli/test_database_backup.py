"""``aftercare db backup`` and ``db restore`` on SQLite and on the PostgreSQL server
(pg_dump / pg_restore / psql), with the real customer key store and codec, and the
erasure steps as the worker wires them: a customer erased after the backup stays
erased after the restore, their payloads undecryptable, while everyone else's still
decrypt; a restore refuses a backup of the other kind of database or of a newer
schema; with nothing journaled a restore brings the backup back as it was."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.converter import WorkflowSerializationContext
from typer.testing import CliRunner

from engine.cli.app import app
from engine.customers.preferences import PreferenceStore
from engine.platform.codec.customer_codec import CustomerKeyCodec, CustomerKeyDestroyed
from engine.platform.codec.customer_keys import CustomerKeys
from engine.platform.codec.runtime import erasure_marks_for, keyring_for
from engine.platform.database.backup import head_revision, read_manifest
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.database.erasure_journal import erasure_journal_for
from engine.platform.database.migrate import upgrade_database
from engine.platform.database.tables import (
    CustomerKeyRecord,
    CustomerPreferenceRecord,
    ErasedCustomer,
    JourneyOwnerRecord,
)
from engine.platform.settings import Settings
from engine.processes.dev_stack import with_dev_secrets
from engine.processes.worker import erasure_activities
from tests.support.databases import postgres_database, sqlite_url
from workflows.erasure_contracts import AnonymiseLedger, ErasureRequest, SweepRequest

runner = CliRunner()

ERASED, KEPT = "cus-erased-after-backup", "cus-kept"
ERASED_JOURNEY, KEPT_JOURNEY = "order-E-1", "order-K-1"
SECRET_TEXT = b'{"street": "Quarrendon Lane 7"}'


@dataclass
class Deployment:
    """What the commands see: settings, and the environment that gives them."""

    settings: Settings

    def env(self, database_url: str | None = None) -> dict[str, str]:
        settings = self.settings
        assert settings.secret_key is not None
        assert settings.codec_keys is not None
        return {
            "AFTERCARE_STATE_DIR": str(settings.state_dir),
            "AFTERCARE_DATABASE_URL": database_url or settings.resolved_database_url,
            "AFTERCARE_SECRET_KEY": settings.secret_key.get_secret_value(),
            "AFTERCARE_CODEC_KEYS": settings.codec_keys.get_secret_value(),
        }

    def at(self, database_url: str) -> Deployment:
        return Deployment(
            self.settings.model_copy(update={"database_url": SecretStr(database_url)})
        )


def deployment(tmp_path: Path, database_url: str) -> Deployment:
    return Deployment(
        with_dev_secrets(
            Settings(_env_file=None, state_dir=tmp_path / "state", database_url=database_url)
        )
    )


def db(deployed: Deployment, *args: str, database_url: str | None = None) -> tuple[int, str]:
    result = runner.invoke(app, ["db", *args], env=deployed.env(database_url))
    return result.exit_code, result.stdout + result.stderr


async def db_async(
    deployed: Deployment, *args: str, database_url: str | None = None
) -> tuple[int, str]:
    # The commands run their own event loop: off this one.
    return await asyncio.to_thread(db, deployed, *args, database_url=database_url)


@contextmanager
def empty_database(like: str, folder: Path) -> Iterator[str]:
    """A new, empty database of the same kind as ``like`` (the old one lost)."""
    if make_url(like).get_backend_name() == "sqlite":
        folder.mkdir()
        yield sqlite_url(folder)
    else:
        with postgres_database() as url:
            yield url


def context(workflow_id: str) -> WorkflowSerializationContext:
    return WorkflowSerializationContext(namespace="default", workflow_id=workflow_id)


async def sealed(keys: CustomerKeys, workflow_id: str) -> Payload:
    codec = CustomerKeyCodec(keys.keyring, keys).with_context(context(workflow_id))
    [payload] = await codec.encode(
        [Payload(metadata={"encoding": b"json/plain"}, data=SECRET_TEXT)]
    )
    return payload


async def opened(deployed: Deployment, database_url: str, payload: Payload) -> bytes:
    """Decoded by a fresh store (nothing cached), as a restarted codec server would."""
    settings = deployed.at(database_url).settings
    keys = CustomerKeys.open(database_url, keyring_for(settings), erasure_marks_for(settings))
    try:
        [plain] = await CustomerKeyCodec(keys.keyring, keys).decode([payload])
    finally:
        await keys.aclose()
    return plain.data


async def count(database_url: str, table: type[object], where: object) -> int:
    engine = create_engine(database_url)
    try:
        async with create_session_factory(engine)() as session:
            found = await session.scalar(select(func.count()).select_from(table).where(where))  # type: ignore[arg-type]
    finally:
        await engine.dispose()
    assert isinstance(found, int)
    return found


@pytest.fixture
async def customers(database_url: str, tmp_path: Path) -> tuple[Deployment, dict[str, Payload]]:
    """Two customers with a journey each, a payload sealed under each one's key, and a
    preference row for the one to be erased."""
    deployed = deployment(tmp_path, database_url)
    settings = deployed.settings
    keys = CustomerKeys.open(database_url, keyring_for(settings), erasure_marks_for(settings))
    engine = create_engine(database_url)
    try:
        await keys.register_journey(ERASED_JOURNEY, ERASED)
        await keys.register_journey(KEPT_JOURNEY, KEPT)
        await PreferenceStore(create_session_factory(engine), erasure_marks_for(settings)).snapshot(
            ERASED
        )
        payloads = {
            ERASED: await sealed(keys, ERASED_JOURNEY),
            KEPT: await sealed(keys, KEPT_JOURNEY),
        }
    finally:
        await engine.dispose()
        await keys.aclose()
    return deployed, payloads


async def erase(temporal_client: Client, settings: Settings, customer_id: str) -> None:
    """The erasure's steps that touch our database, as the worker wires them (its
    journal included); the journeys themselves are not in Temporal here."""
    async with erasure_activities(temporal_client, settings) as steps:
        await steps.mark(ErasureRequest(customer_id))
        await steps.forget_rows(SweepRequest(customer_id, [ERASED_JOURNEY]))
        await steps.anonymise_ledger(AnonymiseLedger([ERASED_JOURNEY]))
        assert await steps.destroy_key(ErasureRequest(customer_id))


async def test_a_customer_erased_after_the_backup_stays_erased_after_a_restore(
    customers: tuple[Deployment, dict[str, Payload]],
    database_url: str,
    temporal_client: Client,
    tmp_path: Path,
) -> None:
    deployed, payloads = customers
    backup = tmp_path / "backups" / "aftercare.backup"
    code, out = await db_async(deployed, "backup", str(backup))
    assert code == 0, out
    kind = make_url(database_url).get_backend_name()
    assert read_manifest(backup).database == kind

    await erase(temporal_client, deployed.settings, ERASED)
    marks = erasure_marks_for(deployed.settings)
    journal = erasure_journal_for(deployed.settings)
    try:
        assert [e.customer_hash for e in await journal.entries()] == [marks.digest(ERASED)]
    finally:
        await journal.aclose()
    journal_file = deployed.settings.state_dir / "erasure-journal.db"
    assert ERASED.encode() not in journal_file.read_bytes()  # hashes only

    # The database is lost; the backup goes into a new, empty one.
    with empty_database(database_url, tmp_path / "new") as restored:
        code, out = await db_async(deployed, "restore", "--yes", str(backup), database_url=restored)
        assert code == 0, out
        assert "1 customers erased again, 1 data keys destroyed" in out

        with pytest.raises(CustomerKeyDestroyed):
            await opened(deployed, restored, payloads[ERASED])
        assert await opened(deployed, restored, payloads[KEPT]) == SECRET_TEXT
        digest = marks.digest(ERASED)
        assert await count(restored, ErasedCustomer, ErasedCustomer.customer_hash == digest) == 1
        assert (
            await count(restored, CustomerKeyRecord, CustomerKeyRecord.customer_id == ERASED) == 0
        )
        assert await count(restored, CustomerKeyRecord, CustomerKeyRecord.customer_id == KEPT) == 1
        owners = JourneyOwnerRecord.customer_id == marks.erased_owner(ERASED)
        assert await count(restored, JourneyOwnerRecord, owners) == 1
        assert (
            await count(
                restored, CustomerPreferenceRecord, CustomerPreferenceRecord.customer_id == ERASED
            )
            == 0
        )
        # Restoring again changes nothing more.
        code, out = await db_async(deployed, "restore", "--yes", str(backup), database_url=restored)
        assert code == 0, out
        with pytest.raises(CustomerKeyDestroyed):
            await opened(deployed, restored, payloads[ERASED])
        assert await opened(deployed, restored, payloads[KEPT]) == SECRET_TEXT


async def test_with_nothing_journaled_a_restore_brings_the_backup_back_as_it_was(
    customers: tuple[Deployment, dict[str, Payload]], database_url: str, tmp_path: Path
) -> None:
    deployed, payloads = customers
    backup = tmp_path / "aftercare.backup"
    assert (await db_async(deployed, "backup", str(backup)))[0] == 0
    with empty_database(database_url, tmp_path / "new") as restored:
        code, out = await db_async(deployed, "restore", "--yes", str(backup), database_url=restored)
        assert code == 0, out
        assert "0 erasures" in out
        for customer in (ERASED, KEPT):
            assert await opened(deployed, restored, payloads[customer]) == SECRET_TEXT
        assert await count(restored, ErasedCustomer, ErasedCustomer.customer_hash.is_not(None)) == 0


async def test_a_restore_refuses_a_backup_with_a_newer_schema(
    customers: tuple[Deployment, dict[str, Payload]], database_url: str, tmp_path: Path
) -> None:
    deployed, _payloads = customers
    _set_revision(database_url, "0999")  # as a later release would leave it
    backup = tmp_path / "newer.backup"
    assert (await db_async(deployed, "backup", str(backup)))[0] == 0
    assert read_manifest(backup).revision == "0999"
    _set_revision(database_url, _head())

    with empty_database(database_url, tmp_path / "new") as target:
        upgrade_database(target)
        code, out = await db_async(deployed, "restore", "--yes", str(backup), database_url=target)
        assert code == 1
        assert "revision 0999, which this release does not know" in out
        assert "made by a newer release" in out
        # Nothing changed: the target is still the empty, migrated database.
        assert await count(target, CustomerKeyRecord, CustomerKeyRecord.key_id.is_not(None)) == 0


async def test_a_restore_refuses_a_backup_of_the_other_kind_of_database(
    tmp_path: Path,
) -> None:
    sqlite = sqlite_url(tmp_path)
    upgrade_database(sqlite)
    with postgres_database() as postgresql:
        upgrade_database(postgresql)
        deployed = deployment(tmp_path, sqlite)
        for source, target, named in (
            (sqlite, postgresql, "SQLite"),
            (postgresql, sqlite, "PostgreSQL"),
        ):
            backup = tmp_path / f"{named}.backup"
            code, out = await db_async(deployed, "backup", str(backup), database_url=source)
            assert code == 0, out
            code, out = await db_async(
                deployed, "restore", "--yes", str(backup), database_url=target
            )
            assert code == 1
            assert f"is a backup of a {named} database" in out


def _head() -> str:
    return head_revision("sqlite+aiosqlite:///unused.db")


def _set_revision(database_url: str, revision: str) -> None:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        assert url.database is not None
        with sqlite3.connect(url.database) as connection:
            connection.execute("UPDATE alembic_version SET version_num = ?", (revision,))
        return
    plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain, autocommit=True) as connection:
        connection.execute("UPDATE alembic_version SET version_num = %s", (revision,))


async def test_restoring_in_place_journals_the_marks_of_the_database_it_replaces(
    customers: tuple[Deployment, dict[str, Payload]],
    database_url: str,
    temporal_client: Client,
    tmp_path: Path,
) -> None:
    """An erasure the journal lacks (made before it existed, or the journal's storage
    replaced) survives a restore over the database that still holds its mark."""
    deployed, payloads = customers
    backup = tmp_path / "aftercare.backup"
    assert (await db_async(deployed, "backup", str(backup)))[0] == 0
    await erase(temporal_client, deployed.settings, ERASED)
    (deployed.settings.state_dir / "erasure-journal.db").unlink()

    code, out = await db_async(deployed, "restore", "--yes", str(backup))
    assert code == 0, out
    assert "1 customers erased again" in out
    with pytest.raises(CustomerKeyDestroyed):
        await opened(deployed, database_url, payloads[ERASED])
    assert await opened(deployed, database_url, payloads[KEPT]) == SECRET_TEXT


def test_a_journal_inside_the_database_itself_is_refused(tmp_path: Path) -> None:
    database = sqlite_url(tmp_path)
    upgrade_database(database)
    deployed = deployment(tmp_path, database)
    backup = tmp_path / "aftercare.backup"
    assert db(deployed, "backup", str(backup))[0] == 0
    env = deployed.env() | {"AFTERCARE_ERASURE_JOURNAL_URL": database}
    result = runner.invoke(app, ["db", "restore", "--yes", str(backup)], env=env)
    assert result.exit_code == 2
    assert "names the service's own database" in result.stderr
