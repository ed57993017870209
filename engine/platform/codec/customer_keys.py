"""Per-customer data keys: crypto-shredding for journey history.

Every journey's payloads are encrypted under a data key of its customer (see
:mod:`engine.platform.codec.customer_codec`). Destroying that key is how a customer is erased
from Temporal's history, which we cannot rewrite: the ciphertext stays, and nobody,
us included, can read it any more.

What is stored (``customer_keys`` and ``journey_owners``, migration 0005):

* per customer, a random 256-bit key, **wrapped**: AES-GCM-encrypted under the
  current master key of the payload keyring (:mod:`engine.platform.codec.keys`), with that
  master key's id. A database dump alone reveals no key; rotating the master keyring
  keeps old wrappings readable (the retired master key stays configured) and
  :meth:`CustomerKeys.rewrap` moves them all to the current master key;
* a random opaque key id (``ck-`` and 24 hex digits), which payload metadata names:
  it never reveals the customer;
* which customer each journey (workflow id) belongs to.

Caching: a journey runs many payloads, so keys are kept in memory, unwrapped, with
an AES-GCM cipher ready; once cached, no payload costs a database call. Entries live
``ttl`` seconds (30 by default; a journey with no owner, ``miss_ttl``, 5 s). A
:meth:`~CustomerKeys.destroy` evicts at once in the process that runs it; **other
processes keep using (and decrypting with) a destroyed key for at most ``ttl``**,
after which they find it gone.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, NamedTuple, cast

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Executable, Table, bindparam, delete, event, exists, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from engine.platform.codec.keys import KEY_BYTES, Keyring, KeyringError
from engine.platform.database.connection import create_engine
from engine.platform.database.erasure_marks import (
    ERASED_OWNER_PREFIX,
    CustomerErased,
    ErasureMarks,
)
from engine.platform.database.tables import CustomerKeyRecord, JourneyOwnerRecord
from engine.platform.database.timestamps import as_utc
from engine.platform.database.upsert import insert_on_conflict

DEFAULT_TTL_SECONDS = 30.0
DEFAULT_MISS_TTL_SECONDS = 5.0
DEFAULT_CACHE_ENTRIES = 10_000
MAX_WORKFLOW_ID_LENGTH = 200  # journey_owners.workflow_id
MAX_CUSTOMER_ID_LENGTH = 128  # customer_keys.customer_id, as everywhere else
CUSTOMER_KEY_ID_PREFIX = "ck-"

_NONCE_BYTES = 12
# Domain separation for wrapping, and the key id bound in: a wrapped key copied onto
# another row (another key id) fails to unwrap instead of serving as that key.
_WRAP_AAD_PREFIX = b"aftercare/customer-key-wrap/v1:"
_READ_ONLY = "aftercare_read_only"
_REGISTER_ATTEMPTS = 3
_CUSTOMER_KEY_ID = re.compile(r"^ck-[0-9a-f]{24}$")


class CustomerKeyError(ValueError):
    """A customer key cannot be used: bad input, or a wrapping that does not open."""


class CustomerDataKey(NamedTuple):
    key_id: str
    key: bytes

    def __repr__(self) -> str:
        # Keys end up in tracebacks and logs through reprs: never the key itself.
        return f"CustomerDataKey(key_id={self.key_id!r}, key=<hidden>)"


@dataclass(frozen=True)
class LoadedKey:
    """A customer key ready to use: what the codec takes from the cache."""

    key_id: str
    cipher: AESGCM
    key: bytes

    def __repr__(self) -> str:
        return f"LoadedKey(key_id={self.key_id!r})"


def _check(field: str, value: str, max_length: int) -> None:
    if not isinstance(value, str) or not value.strip():
        raise CustomerKeyError(f"{field}: must not be empty")
    if len(value) > max_length:
        raise CustomerKeyError(f"{field}: must be at most {max_length} characters")


def is_customer_key_id(key_id: str) -> bool:
    return bool(_CUSTOMER_KEY_ID.match(key_id))


def _new_key_id() -> str:
    return CUSTOMER_KEY_ID_PREFIX + secrets.token_hex(12)


def _wrap_aad(key_id: str) -> bytes:
    return _WRAP_AAD_PREFIX + key_id.encode("utf-8")


class CustomerKeys:
    """The customer key store over SQL, with an in-process cache.

    ``engine`` may be shared with the rest of the process; :meth:`open` makes one of
    its own for a database URL (then :meth:`aclose` disposes of it).
    """

    def __init__(
        self,
        engine: AsyncEngine,
        keyring: Keyring,
        marks: ErasureMarks,
        *,
        ttl: float = DEFAULT_TTL_SECONDS,
        miss_ttl: float = DEFAULT_MISS_TTL_SECONDS,
        max_entries: int = DEFAULT_CACHE_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
        owns_engine: bool = False,
    ) -> None:
        self._engine = engine
        self._keyring = keyring
        # An erased customer gets no journey and no key again (see register_journey).
        self._marks = marks
        self._ttl = ttl
        self._miss_ttl = miss_ttl
        self._max_entries = max_entries
        self._clock = clock
        self._owns_engine = owns_engine
        # workflow id -> (expires, key id or None for "no owner")
        self._owners: dict[str, tuple[float, str | None]] = {}
        # key id -> (expires, loaded key)
        self._keys: dict[str, tuple[float, LoadedKey]] = {}

    @classmethod
    def open(
        cls, database_url: str, keyring: Keyring, marks: ErasureMarks, **options: Any
    ) -> CustomerKeys:
        """A store with an engine of its own on ``database_url``; no connection is
        made until the first call."""
        return cls(key_store_engine(database_url), keyring, marks, owns_engine=True, **options)

    async def aclose(self) -> None:
        if self._owns_engine:
            await self._engine.dispose()

    @property
    def keyring(self) -> Keyring:
        return self._keyring

    # --- the API -------------------------------------------------------------------

    async def register_journey(self, workflow_id: str, customer_id: str) -> bool:
        """Record that ``workflow_id`` is ``customer_id``'s journey, making the
        customer's key if they have none. Idempotent; the first owner recorded for a
        workflow id stays its owner (an order belongs to one customer).

        Returns whether the owner has any other journey on record (running or
        ended): a journey that is its customer's first has no older one to tell
        about a reorder. Raises CustomerErased for an erased customer, checked in the
        same transaction, under the customer's lock, that an erasure marks them in:
        a start racing an erasure either is refused or is found by it."""
        _check("workflow_id", workflow_id, MAX_WORKFLOW_ID_LENGTH)
        _check("customer_id", customer_id, MAX_CUSTOMER_ID_LENGTH)
        for attempt in range(1, _REGISTER_ATTEMPTS + 1):
            try:
                loaded, has_other_journeys = await self._register_once(workflow_id, customer_id)
                break
            except IntegrityError:
                # A concurrent registration of the same customer or journey committed
                # first (PostgreSQL): run again and use theirs.
                if attempt == _REGISTER_ATTEMPTS:
                    raise
        self._remember_owner(workflow_id, loaded.key_id)
        self._remember_key(loaded)
        return has_other_journeys

    async def key_for_workflow(self, workflow_id: str) -> CustomerDataKey | None:
        """The data key of the customer who owns ``workflow_id``; None when the
        journey has no registered owner (or its owner was erased)."""
        loaded = await self.loaded_for_workflow(workflow_id)
        return None if loaded is None else CustomerDataKey(loaded.key_id, loaded.key)

    async def key_by_id(self, key_id: str) -> bytes | None:
        """The key named ``key_id``; None when it does not exist (destroyed)."""
        loaded = await self.loaded_by_id(key_id)
        return None if loaded is None else loaded.key

    async def destroy(self, customer_id: str) -> bool:
        """Delete the customer's key: everything encrypted under it becomes unreadable
        for good. Their journeys' owner rows keep only the keyed hash of the id, so a
        later erasure still finds them. Idempotent; True if a key existed."""
        _check("customer_id", customer_id, MAX_CUSTOMER_ID_LENGTH)
        async with self._engine.begin() as connection:
            key_ids = list(
                await connection.scalars(
                    select(CustomerKeyRecord.key_id).where(
                        CustomerKeyRecord.customer_id == customer_id
                    )
                )
            )
            await connection.execute(
                update(JourneyOwnerRecord)
                .where(JourneyOwnerRecord.customer_id == customer_id)
                .values(customer_id=self._marks.erased_owner(customer_id))
            )
            await connection.execute(
                delete(CustomerKeyRecord).where(CustomerKeyRecord.customer_id == customer_id)
            )
        for key_id in key_ids:
            self._forget_key(key_id)
        return bool(key_ids)

    async def journeys_of(self, customer_id: str) -> list[tuple[str, datetime]]:
        """Every journey the customer owns (or owned, before an erasure hashed the
        owner rows), whatever Temporal still keeps: (workflow id, registered at)."""
        _check("customer_id", customer_id, MAX_CUSTOMER_ID_LENGTH)
        async with self._read() as connection:
            rows = await connection.execute(
                select(JourneyOwnerRecord.workflow_id, JourneyOwnerRecord.created_at)
                .where(
                    JourneyOwnerRecord.customer_id.in_(
                        [customer_id, self._marks.erased_owner(customer_id)]
                    )
                )
                .order_by(JourneyOwnerRecord.created_at)
            )
            return [(workflow_id, as_utc(at)) for workflow_id, at in rows]

    async def rewrap(self) -> int:
        """Wrap every key not wrapped under the current master key again under it,
        so retired master keys can eventually be removed. Returns how many moved."""
        current = self._keyring.current_key_id
        moved = 0
        async with self._engine.begin() as connection:
            rows = (
                await connection.execute(
                    select(
                        CustomerKeyRecord.key_id,
                        CustomerKeyRecord.wrapped_key,
                        CustomerKeyRecord.master_key_id,
                    ).where(CustomerKeyRecord.master_key_id != current)
                )
            ).all()
            for key_id, wrapped, master_key_id in rows:
                key = self._unwrap(key_id, wrapped, master_key_id)
                await connection.execute(
                    update(CustomerKeyRecord)
                    .where(CustomerKeyRecord.key_id == key_id)
                    .values(wrapped_key=self._wrap(key_id, key), master_key_id=current)
                )
                moved += 1
        return moved

    # --- what the codec uses (cached) -------------------------------------------------

    async def loaded_for_workflow(self, workflow_id: str) -> LoadedKey | None:
        now = self._clock()
        cached = self._owners.get(workflow_id)
        if cached is not None and cached[0] > now:
            if cached[1] is None:
                return None
            loaded = self._cached_key(cached[1], now)
            if loaded is not None:
                return loaded
        async with self._read() as connection:
            row = (await connection.execute(_KEY_OF_WORKFLOW, {"workflow_id": workflow_id})).first()
        if row is None:
            self._remember_owner(workflow_id, None)
            return None
        loaded = self._load(row.key_id, self._unwrap(*row))
        self._remember_owner(workflow_id, loaded.key_id)
        self._remember_key(loaded)
        return loaded

    def owner_seen(self, workflow_id: str, key_id: str) -> None:
        """A payload of ``workflow_id`` opened with ``key_id``: that is its owner's key
        (every payload of a journey is sealed under its owner's), so the journey's
        next encode needs no lookup. A worker decodes a new journey's input first."""
        cached = self._owners.get(workflow_id)
        if cached is None or cached[1] != key_id:
            self._remember_owner(workflow_id, key_id)

    async def loaded_by_id(self, key_id: str) -> LoadedKey | None:
        loaded = self._cached_key(key_id, self._clock())
        if loaded is not None:
            return loaded
        if not is_customer_key_id(key_id):
            return None  # not one of ours: no need to ask the database
        async with self._read() as connection:
            row = (await connection.execute(_KEY_BY_ID, {"key_id": key_id})).first()
        if row is None:
            # Not cached: a key destroyed elsewhere must not come back from here.
            return None
        loaded = self._load(row.key_id, self._unwrap(*row))
        self._remember_key(loaded)
        return loaded

    # --- internals -----------------------------------------------------------------

    async def _register_once(self, workflow_id: str, customer_id: str) -> tuple[LoadedKey, bool]:
        """The owner's key and whether the owner has other journeys on record.

        Three statements for a new customer's journey (the common case), four for a
        returning customer's: each insert decides a race through the unique
        constraint and hands back the row it wrote."""
        async with self._engine.begin() as connection:
            await self._marks.lock(connection, customer_id)
            if await self._marks.is_erased(connection, customer_id):
                raise CustomerErased()
            statements = _registration_statements(connection.dialect.name)
            owner = await connection.scalar(
                statements.add_owner, {"workflow_id": workflow_id, "customer_id": customer_id}
            )
            if owner is None:  # the journey was registered before: its owner stays
                owner = await connection.scalar(_OWNER_OF, {"workflow_id": workflow_id})
                assert owner is not None  # journey owners are never deleted
                if owner.startswith(ERASED_OWNER_PREFIX):
                    raise CustomerErased()  # the order's customer was erased
            has_other_journeys = bool(
                await connection.scalar(
                    _HAS_OTHER_JOURNEYS, {"customer_id": owner, "workflow_id": workflow_id}
                )
            )
            key_id, key = _new_key_id(), os.urandom(KEY_BYTES)
            added = await connection.scalar(
                statements.add_key,
                {
                    "key_id": key_id,
                    "customer_id": owner,
                    "wrapped_key": self._wrap(key_id, key),
                    "master_key_id": self._keyring.current_key_id,
                },
            )
            if added is not None:
                return self._load(key_id, key), has_other_journeys
            row = (await connection.execute(_KEY_OF_CUSTOMER, {"customer_id": owner})).one()
            return self._load(row.key_id, self._unwrap(*row)), has_other_journeys

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only transaction: on our own SQLite engine a plain (deferred) BEGIN,
        which never waits for, nor holds up, the writers."""
        async with self._engine.connect() as connection:
            yield await connection.execution_options(**{_READ_ONLY: True})

    def _wrap(self, key_id: str, key: bytes) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        master = AESGCM(self._keyring.current_key)
        return nonce + master.encrypt(nonce, key, _wrap_aad(key_id))

    def _unwrap(self, key_id: str, wrapped: bytes, master_key_id: str) -> bytes:
        master_key = self._keyring.key(master_key_id)
        if master_key is None:
            raise KeyringError(
                f"customer key {key_id!r} is wrapped with master key {master_key_id!r}, "
                "which is not in the keyring; keep retired keys configured until "
                "CustomerKeys.rewrap() has moved every customer key to the current one"
            )
        nonce, sealed = bytes(wrapped[:_NONCE_BYTES]), bytes(wrapped[_NONCE_BYTES:])
        try:
            key = AESGCM(master_key).decrypt(nonce, sealed, _wrap_aad(key_id))
        except InvalidTag as err:
            raise CustomerKeyError(
                f"customer key {key_id!r} does not unwrap under master key "
                f"{master_key_id!r}: altered, or wrapped under another key with that id"
            ) from err
        if len(key) != KEY_BYTES:
            raise CustomerKeyError(f"customer key {key_id!r} is not {KEY_BYTES} bytes")
        return key

    @staticmethod
    def _load(key_id: str, key: bytes) -> LoadedKey:
        return LoadedKey(key_id=key_id, cipher=AESGCM(key), key=key)

    def _cached_key(self, key_id: str, now: float) -> LoadedKey | None:
        cached = self._keys.get(key_id)
        if cached is None or cached[0] <= now:
            return None
        return cached[1]

    def _remember_owner(self, workflow_id: str, key_id: str | None) -> None:
        ttl = self._ttl if key_id is not None else self._miss_ttl
        _bounded_put(self._owners, workflow_id, (self._clock() + ttl, key_id), self._max_entries)

    def _remember_key(self, loaded: LoadedKey) -> None:
        _bounded_put(
            self._keys, loaded.key_id, (self._clock() + self._ttl, loaded), self._max_entries
        )

    def _forget_key(self, key_id: str) -> None:
        self._keys.pop(key_id, None)
        # Rare (erasure), so a scan is fine; the hot path stays two dict lookups.
        for workflow_id in [w for w, (_, k) in self._owners.items() if k == key_id]:
            del self._owners[workflow_id]


# The statements of registration and lookup are built once, on the tables: every
# journey start registers its owner, and building ORM statements per call cost twice
# the CPU of these (docs/performance.md).
_OWNERS = cast(Table, JourneyOwnerRecord.__table__)
_KEYS = cast(Table, CustomerKeyRecord.__table__)
_OWNER_OF = select(_OWNERS.c.customer_id).where(_OWNERS.c.workflow_id == bindparam("workflow_id"))
_HAS_OTHER_JOURNEYS = select(
    exists().where(
        _OWNERS.c.customer_id == bindparam("customer_id"),
        _OWNERS.c.workflow_id != bindparam("workflow_id"),
    )
)
_WRAPPED_KEY_COLUMNS = (_KEYS.c.key_id, _KEYS.c.wrapped_key, _KEYS.c.master_key_id)
_KEY_OF_CUSTOMER = select(*_WRAPPED_KEY_COLUMNS).where(
    _KEYS.c.customer_id == bindparam("customer_id")
)
_KEY_OF_WORKFLOW = (
    select(*_WRAPPED_KEY_COLUMNS)
    .join(_OWNERS, _OWNERS.c.customer_id == _KEYS.c.customer_id)
    .where(_OWNERS.c.workflow_id == bindparam("workflow_id"))
)
_KEY_BY_ID = select(*_WRAPPED_KEY_COLUMNS).where(_KEYS.c.key_id == bindparam("key_id"))


@dataclass(frozen=True)
class _RegistrationStatements:
    # INSERT ... ON CONFLICT DO NOTHING RETURNING: a value back only when inserted.
    add_owner: Executable
    add_key: Executable


@cache
def _registration_statements(dialect: str) -> _RegistrationStatements:
    return _RegistrationStatements(
        add_owner=insert_on_conflict(dialect, _OWNERS)
        .on_conflict_do_nothing(index_elements=[_OWNERS.c.workflow_id])
        .returning(_OWNERS.c.customer_id),
        add_key=insert_on_conflict(dialect, _KEYS)
        .on_conflict_do_nothing(index_elements=[_KEYS.c.customer_id])
        .returning(_KEYS.c.key_id),
    )


def _bounded_put(cache: dict[str, Any], key: str, value: Any, max_entries: int) -> None:
    # Oldest first out (dicts keep insertion order): bounded memory without the cost
    # of LRU bookkeeping on every hit. Re-inserting moves an entry to the back.
    cache.pop(key, None)
    while len(cache) >= max_entries:
        del cache[next(iter(cache))]
    cache[key] = value


def key_store_engine(database_url: str) -> AsyncEngine:
    """The engine a store opened on ``database_url`` uses.

    PostgreSQL: the service's usual pooled engine. SQLite: no pool, so no
    connection (and no aiosqlite thread) outlives a call; the store is also used by
    short-lived clients that never close it, and lookups are rare once cached.
    """
    if make_url(database_url).get_backend_name() != "sqlite":
        return create_engine(database_url)
    engine = create_async_engine(database_url, poolclass=NullPool)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, below

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Writers take the lock up front (a deferred read-then-write transaction
        # cannot wait for it; see engine.platform.database.connection); readers need none.
        read_only = connection.get_execution_options().get(_READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine
