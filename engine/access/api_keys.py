"""API keys of the gRPC API: created, verified, revoked and listed.

A key reads ``ak_<id>_<secret>``: ``id`` is 16 hex digits, public (it names the key
in logs, ``aftercare keys list`` and ``revoke``); ``secret`` is 32 random bytes,
base64url. Only the SHA-256 of the secret (bound to the id) is stored, so the
table cannot be used to call the API. A plain hash is enough here, unlike for
passwords: with 256 random bits there is nothing to guess, so a slow hash would
only slow down every cache miss. The hash comparison takes constant time.

The plaintext key exists once, in what :meth:`ApiKeyStore.create` returns.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import async_sessionmaker

from engine.access.scopes import Scope, parse_scopes
from engine.platform.database.tables import ApiKeyRecord
from engine.platform.database.timestamps import as_utc

KEY_PREFIX = "ak"
_ID_BYTES = 8
_SECRET_BYTES = 32
_KEY_PATTERN = re.compile(r"ak_(?P<id>[0-9a-f]{16})_(?P<secret>[A-Za-z0-9_-]{43})")
_ID_PATTERN = re.compile(r"[0-9a-f]{16}")
# Domain separation: these hashes can never collide with any other SHA-256 we keep.
_HASH_CONTEXT = b"aftercare-api-key-v1\x00"
MAX_NAME_LENGTH = 100


class KeyProblem(StrEnum):
    """Why a presented key was refused; the text is safe to show the caller."""

    MALFORMED = "malformed API key (expected ak_<id>_<secret>)"
    UNKNOWN = "unknown API key"
    REVOKED = "API key revoked"


class InvalidApiKey(Exception):
    def __init__(self, problem: KeyProblem, key_id: str | None = None) -> None:
        super().__init__(problem.value)
        self.problem = problem
        #: The id part when the key was well-formed (for logs; never the secret).
        self.key_id = key_id


class InvalidKeyRequest(ValueError):
    """Bad input to create or revoke; ``field`` names what is wrong."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class ApiKeyNotFound(LookupError):
    def __init__(self, key_id: str) -> None:
        super().__init__(f"no API key with id {key_id}")
        self.key_id = key_id


@dataclass(frozen=True)
class ApiKeyInfo:
    """Everything about a key except its secret."""

    id: str
    name: str
    scopes: frozenset[Scope]
    created_at: datetime  # aware, UTC
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


@dataclass(frozen=True)
class CreatedApiKey:
    info: ApiKeyInfo
    #: The plaintext key: shown once, stored nowhere.
    token: str


def parse_key(token: str) -> tuple[str, str]:
    """``(id, secret)`` of a well-formed key; InvalidApiKey(MALFORMED) otherwise."""
    match = _KEY_PATTERN.fullmatch(token)
    if match is None:
        raise InvalidApiKey(KeyProblem.MALFORMED)
    return match["id"], match["secret"]


def _secret_hash(key_id: str, secret: str) -> str:
    return hashlib.sha256(
        _HASH_CONTEXT + key_id.encode("ascii") + b"\x00" + secret.encode("ascii")
    ).hexdigest()


def _aware(value: datetime | None) -> datetime | None:
    return None if value is None else as_utc(value)


def _info(row: Any) -> ApiKeyInfo:
    created = _aware(row.created_at)
    assert created is not None  # NOT NULL column
    return ApiKeyInfo(
        id=row.id,
        name=row.name,
        scopes=frozenset(Scope(name) for name in row.scopes.split()),
        created_at=created,
        revoked_at=_aware(row.revoked_at),
        last_used_at=_aware(row.last_used_at),
    )


def _checked_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise InvalidKeyRequest("name", "must not be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidKeyRequest("name", f"at most {MAX_NAME_LENGTH} characters")
    if not name.isprintable():
        raise InvalidKeyRequest("name", "must not contain control characters")
    return name


def _checked_scopes(scopes: Iterable[str]) -> frozenset[Scope]:
    names = tuple(scopes)
    if not names:
        raise InvalidKeyRequest("scopes", "give at least one scope")
    try:
        return parse_scopes(names)
    except ValueError as err:
        raise InvalidKeyRequest("scopes", str(err)) from None


def checked_key_id(key_id: str) -> str:
    if _ID_PATTERN.fullmatch(key_id) is None:
        raise InvalidKeyRequest("id", "expected the 16 hex digits of a key id")
    return key_id


class ApiKeyStore:
    def __init__(self, sessions: async_sessionmaker[Any]) -> None:
        self._sessions = sessions

    async def create(self, name: str, scopes: Iterable[str]) -> CreatedApiKey:
        """A new key with these scopes; the returned token is the only copy."""
        checked_name = _checked_name(name)
        checked_scopes = _checked_scopes(scopes)
        key_id = secrets.token_hex(_ID_BYTES)
        secret = secrets.token_urlsafe(_SECRET_BYTES)
        now = datetime.now(UTC)
        async with self._sessions.begin() as session:
            await session.execute(
                insert(ApiKeyRecord).values(
                    id=key_id,
                    name=checked_name,
                    secret_hash=_secret_hash(key_id, secret),
                    scopes=" ".join(sorted(checked_scopes)),
                    created_at=now,
                )
            )
        info = ApiKeyInfo(id=key_id, name=checked_name, scopes=checked_scopes, created_at=now)
        return CreatedApiKey(info=info, token=f"{KEY_PREFIX}_{key_id}_{secret}")

    async def verify(self, token: str) -> ApiKeyInfo:
        """The key's details if ``token`` is a valid, unrevoked key; else InvalidApiKey."""
        key_id, secret = parse_key(token)
        async with self._sessions() as session:
            row = (
                await session.execute(select(ApiKeyRecord).where(ApiKeyRecord.id == key_id))
            ).scalar_one_or_none()
        # The same work whether the id exists or not, then one constant-time compare.
        presented = _secret_hash(key_id, secret)
        stored = row.secret_hash if row is not None else "0" * len(presented)
        if not hmac.compare_digest(presented, stored) or row is None:
            raise InvalidApiKey(KeyProblem.UNKNOWN, key_id)
        info = _info(row)
        if info.revoked:
            raise InvalidApiKey(KeyProblem.REVOKED, key_id)
        return info

    async def mark_used(self, key_id: str, when: datetime | None = None) -> None:
        async with self._sessions.begin() as session:
            await session.execute(
                update(ApiKeyRecord)
                .where(ApiKeyRecord.id == key_id)
                .values(last_used_at=when or datetime.now(UTC))
            )

    async def revoke(self, key_id: str) -> ApiKeyInfo:
        """Revoke the key (again: no change, the first revocation time stays)."""
        checked_key_id(key_id)
        async with self._sessions.begin() as session:
            await session.execute(
                update(ApiKeyRecord)
                .where(ApiKeyRecord.id == key_id, ApiKeyRecord.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC))
            )
            row = (
                await session.execute(select(ApiKeyRecord).where(ApiKeyRecord.id == key_id))
            ).scalar_one_or_none()
        if row is None:
            raise ApiKeyNotFound(key_id)
        return _info(row)

    async def get(self, key_id: str) -> ApiKeyInfo:
        checked_key_id(key_id)
        async with self._sessions() as session:
            row = (
                await session.execute(select(ApiKeyRecord).where(ApiKeyRecord.id == key_id))
            ).scalar_one_or_none()
        if row is None:
            raise ApiKeyNotFound(key_id)
        return _info(row)

    async def list_keys(self, *, include_revoked: bool = True) -> list[ApiKeyInfo]:
        query = select(ApiKeyRecord).order_by(ApiKeyRecord.created_at, ApiKeyRecord.id)
        if not include_revoked:
            query = query.where(ApiKeyRecord.revoked_at.is_(None))
        async with self._sessions() as session:
            rows = (await session.execute(query)).scalars().all()
        return [_info(row) for row in rows]
