"""Backups of the service's database, and restoring one.

A backup is one tar file: ``manifest.json`` first (what kind of database, which
Alembic revision, when, the dump's SHA-256), then the dump itself:

* SQLite: a copy made with SQLite's online backup API, consistent while the service
  writes (``database.sqlite``);
* PostgreSQL: ``pg_dump --format=custom`` (``database.pgdump``).

Restoring refuses a backup of the other kind of database, or one whose schema this
release does not know (made by a newer one), before it touches anything; then it
replaces the database's contents and migrates them up to this release's head. What a
restore must do beyond that (re-applying erasures made since the backup) is the
caller's: see ``engine.customers.erasure_replay``.

The PostgreSQL client tools (``pg_dump``, ``pg_restore``, ``psql``) must be on the
PATH, of the server's major version or newer.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import IO, TYPE_CHECKING

from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool

from engine.platform.database.migrate import alembic_config, sync_url, upgrade_database
from engine.platform.database.tables import Base

if TYPE_CHECKING:
    from alembic.script import ScriptDirectory

BACKUP_FORMAT = "aftercare-database-backup"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
# Backups hold personal data and wrapped keys: for their owner alone.
BACKUP_FILE_MODE = 0o600

_CHUNK = 1 << 20


class BackupError(RuntimeError):
    """A backup cannot be made or restored; the message says why (never a password)."""


class DatabaseKind(StrEnum):
    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"

    @property
    def dump_name(self) -> str:
        return "database.sqlite" if self is DatabaseKind.SQLITE else "database.pgdump"


def database_kind(database_url: str) -> DatabaseKind:
    backend = make_url(database_url).get_backend_name()
    try:
        return DatabaseKind(backend)
    except ValueError:
        raise BackupError(f"cannot back up a {backend} database (SQLite or PostgreSQL)") from None


@dataclass(frozen=True)
class Manifest:
    database: DatabaseKind
    revision: str
    created_at: datetime
    sha256: str
    format: str = BACKUP_FORMAT
    format_version: int = FORMAT_VERSION

    def to_json(self) -> bytes:
        fields = asdict(self) | {
            "database": self.database.value,
            "created_at": self.created_at.isoformat(),
        }
        return json.dumps(fields, indent=2).encode() + b"\n"

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        try:
            fields = json.loads(raw)
            if fields.get("format") != BACKUP_FORMAT:
                raise ValueError("not an Aftercare backup")
            if fields.get("format_version") != FORMAT_VERSION:
                raise ValueError(
                    f"backup format {fields.get('format_version')!r}; this release reads "
                    f"{FORMAT_VERSION}"
                )
            return cls(
                database=DatabaseKind(fields["database"]),
                revision=str(fields["revision"]),
                created_at=datetime.fromisoformat(fields["created_at"]),
                sha256=str(fields["sha256"]),
            )
        except (ValueError, KeyError, TypeError) as err:
            raise BackupError(f"the backup's manifest is not usable: {err}") from None


# --- backing up --------------------------------------------------------------------


def back_up(database_url: str, target: Path) -> Manifest:
    """Write a backup of the database to ``target`` (replaced whole, never half-written)."""
    kind = database_kind(database_url)
    with tempfile.TemporaryDirectory(prefix="aftercare-backup-") as work:
        dump = Path(work) / kind.dump_name
        if kind is DatabaseKind.SQLITE:
            revision = _sqlite_copy(_sqlite_path(database_url), dump)
        else:
            revision = _pg_dump(database_url, dump)
        manifest = Manifest(kind, revision, datetime.now(UTC), _sha256(dump))
        _write_archive(target, manifest, dump)
    return manifest


def _sqlite_copy(source: Path, copy: Path) -> str:
    """Copy through the online backup API (readers and the writer go on meanwhile);
    the revision is read from the copy, so it is the copy's."""
    if not source.exists():
        raise BackupError(f"there is no database at {source}")
    with (
        contextlib.closing(sqlite3.connect(source)) as live,
        contextlib.closing(sqlite3.connect(copy)) as out,
    ):
        live.backup(out)
        # A file that stands alone: no WAL beside it.
        out.execute("PRAGMA journal_mode=DELETE")
    return _sqlite_revision(copy)


def _pg_dump(database_url: str, dump: Path) -> str:
    # The revision before and after: a migration running meanwhile makes no backup.
    before = _pg_revision(database_url)
    _run_tool(
        "pg_dump",
        ["--format=custom", "--no-owner", "--no-privileges", f"--file={dump}"],
        database_url,
    )
    if _pg_revision(database_url) != before:
        raise BackupError("the database was migrated while it was backed up: back it up again")
    return before


def _write_archive(target: Path, manifest: Manifest, dump: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=".backup-", suffix=".tmp")
    try:
        os.chmod(temporary, BACKUP_FILE_MODE)
        with os.fdopen(descriptor, "wb") as file:
            with tarfile.open(fileobj=file, mode="w") as archive:
                # The manifest first: `tar -xOf backup manifest.json` reads it at once.
                info = tarfile.TarInfo(MANIFEST_NAME)
                raw = manifest.to_json()
                info.size, info.mtime, info.mode = (
                    len(raw),
                    int(manifest.created_at.timestamp()),
                    0o600,
                )
                archive.addfile(info, io.BytesIO(raw))
                archive.add(dump, arcname=manifest.database.dump_name, recursive=False)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


# --- restoring ---------------------------------------------------------------------


def read_manifest(backup: Path) -> Manifest:
    with _open_archive(backup) as archive:
        return Manifest.from_json(_member(archive, MANIFEST_NAME).read())


def restore(database_url: str, backup: Path) -> Manifest:
    """Replace the database's contents with the backup's, then migrate them to this
    release's head. Refuses (BackupError, nothing changed) a backup of the other
    kind of database, of a schema newer than this release knows, or a damaged one.
    The service must be stopped meanwhile."""
    kind = database_kind(database_url)
    with _open_archive(backup) as archive:
        manifest = Manifest.from_json(_member(archive, MANIFEST_NAME).read())
        if manifest.database is not kind:
            raise BackupError(
                f"{backup} is a backup of a {_name(manifest.database)} database; the "
                f"configured database (AFTERCARE_DATABASE_URL) is {_name(kind)}: restore "
                f"it into a {_name(manifest.database)} database"
            )
        _check_revision(database_url, manifest.revision)
        with tempfile.TemporaryDirectory(prefix="aftercare-restore-") as work:
            dump = Path(work) / kind.dump_name
            with dump.open("wb") as out:
                shutil.copyfileobj(_member(archive, kind.dump_name), out, _CHUNK)
            if _sha256(dump) != manifest.sha256:
                raise BackupError(f"{backup} is damaged: its database does not match its manifest")
            if kind is DatabaseKind.SQLITE:
                _sqlite_restore(dump, _sqlite_path(database_url), manifest.revision)
            else:
                _pg_restore(database_url, dump)
    upgrade_database(database_url)
    return manifest


def head_revision(database_url: str) -> str:
    head = _scripts(database_url).get_current_head()
    assert head is not None  # the migrations are linear
    return head


def _check_revision(database_url: str, revision: str) -> None:
    from alembic.util.exc import CommandError

    try:
        known = _scripts(database_url).get_revision(revision)
    except CommandError:
        known = None
    if known is None:
        raise BackupError(
            f"the backup's schema is at revision {revision}, which this release does not "
            f"know (its newest is {head_revision(database_url)}): it was made by a newer "
            "release; restore it with that release"
        )


def _scripts(database_url: str) -> ScriptDirectory:
    # Alembic loads when a backup needs it, not with every `aftercare` command.
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(database_url))


def _sqlite_restore(dump: Path, target: Path, revision: str) -> None:
    if _sqlite_revision(dump) != revision:
        raise BackupError("the backup's database is not at the revision its manifest names")
    target.parent.mkdir(parents=True, exist_ok=True)
    # The backup API writes every page of the target under its write lock (waiting
    # for it up to the timeout), whatever the target held: it is the copy afterwards.
    with (
        contextlib.closing(sqlite3.connect(dump)) as saved,
        contextlib.closing(sqlite3.connect(target, timeout=30)) as live,
    ):
        saved.backup(live)


def _pg_restore(database_url: str, dump: Path) -> None:
    """In one transaction: drop every table of ours (also ones newer than the
    backup), then the dump's objects and data. A failure leaves the database as it
    was."""
    with tempfile.TemporaryDirectory(prefix="aftercare-restore-sql-") as work:
        script = Path(work) / "restore.sql"
        _run_tool(
            "pg_restore",
            [
                "--clean",
                "--if-exists",
                "--no-owner",
                "--no-privileges",
                f"--file={script}",
                str(dump),
            ],
            None,
        )
        tables = ", ".join(
            f'"{name}"'
            for name in ["alembic_version", *(t.name for t in Base.metadata.sorted_tables)]
        )
        _run_tool(
            "psql",
            [
                "--no-psqlrc",
                "--quiet",
                "--set=ON_ERROR_STOP=1",
                "--single-transaction",
                f"--command=DROP TABLE IF EXISTS {tables} CASCADE",
                f"--file={script}",
            ],
            database_url,
        )


# --- helpers -----------------------------------------------------------------------


def _sqlite_path(database_url: str) -> Path:
    database = make_url(database_url).database
    if not database or database == ":memory:":
        raise BackupError("the configured SQLite database is in memory: nothing to back up")
    return Path(database)


def _sqlite_revision(path: Path) -> str:
    with contextlib.closing(sqlite3.connect(path)) as connection:
        try:
            row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.DatabaseError:
            row = None
    if row is None:
        raise BackupError(f"{path} is not a migrated Aftercare database (no schema revision)")
    return str(row[0])


def _pg_revision(database_url: str) -> str:
    from alembic.runtime.migration import MigrationContext

    engine = create_sync_engine(sync_url(database_url), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            revision = MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
    if revision is None:
        raise BackupError("the database is not migrated (no schema revision): nothing to back up")
    return revision


def _libpq(database_url: str) -> tuple[str, dict[str, str]]:
    """The URL as libpq takes it, and the environment carrying its password (not on
    the command line, where every user of the machine sees it)."""
    url: URL = make_url(database_url)
    environment = dict(os.environ)
    if url.password is not None:
        environment["PGPASSWORD"] = str(url.password)
    plain = url.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), environment


def _run_tool(tool: str, arguments: list[str], database_url: str | None) -> None:
    path = shutil.which(tool)
    if path is None:
        raise BackupError(
            f"{tool} is not installed: install the PostgreSQL client tools of the "
            "server's major version or newer (Debian: postgresql-client)"
        )
    command = [path, *arguments]
    environment = None
    if database_url is not None:
        conninfo, environment = _libpq(database_url)
        command.append(f"--dbname={conninfo}")
    finished = subprocess.run(command, env=environment, capture_output=True, text=True, check=False)
    if finished.returncode != 0:
        raise BackupError(f"{tool} failed: {finished.stderr.strip() or finished.returncode}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def _open_archive(backup: Path) -> Iterator[tarfile.TarFile]:
    if not backup.is_file() or not tarfile.is_tarfile(backup):
        raise BackupError(f"{backup} is not an Aftercare backup (no such file, or not one)")
    with tarfile.open(backup, mode="r:") as archive:
        yield archive


def _member(archive: tarfile.TarFile, name: str) -> IO[bytes]:
    # Read by name, never extracted: a crafted archive cannot write anywhere.
    try:
        member = archive.getmember(name)
        extracted = archive.extractfile(member) if member.isfile() else None
    except KeyError:
        extracted = None
    if extracted is None:
        raise BackupError(f"the backup holds no {name}: not an Aftercare backup, or damaged")
    return extracted


def _name(kind: DatabaseKind) -> str:
    return "SQLite" if kind is DatabaseKind.SQLITE else "PostgreSQL"
