"""Who may call the gRPC API: API keys sent as ``authorization: Bearer <key>``.

:class:`ApiKeyInterceptor` runs before every handler. A call to one of our
services without a usable key ends UNAUTHENTICATED (missing, malformed, unknown
or revoked key: the message says which, and never repeats the key); a key
without the scopes the method needs (``engine.access.scopes``) ends
PERMISSION_DENIED naming them. Either way the handler never runs and the request
is not even parsed, so a refused call changes nothing.

Verified keys (and refused ones) are kept in memory for ``cache_seconds`` (5 s by
default, ``AFTERCARE_API_KEY_CACHE_SECONDS``), so a busy caller costs no database
round trip per call. The price: revoking a key takes up to that long to reach a
running API server; ``last_used_at`` is updated at most once per key and period.

A handler the interceptor lets through runs knowing its caller: the key's id is
in ``engine.platform.rpc.caller`` for the duration of the call (the consent trail
records it with every decision made through the API).
"""

from __future__ import annotations

import hashlib
import inspect
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeAlias

import grpc
from sqlalchemy.exc import SQLAlchemyError

from engine.access.api_keys import ApiKeyInfo, ApiKeyStore, InvalidApiKey
from engine.access.scopes import Requirement, requirement_for
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.logging import get_logger
from engine.platform.rpc.caller import api_key_variable
from engine.platform.settings import Settings

log = get_logger(__name__)

AUTHORIZATION = "authorization"
_BEARER = "bearer "
DEFAULT_CACHE_SECONDS = 5.0
# Bounds memory when a caller sprays random keys at us; the oldest entries go first.
MAX_CACHED_KEYS = 10_000

Metadata = Sequence[tuple[str, str | bytes]] | None


class Refused(Exception):
    """A call that may not run, with the status and message the caller gets."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def bearer_token(metadata: Metadata) -> str:
    """The key from ``authorization: Bearer <key>``; Refused(UNAUTHENTICATED) if absent
    or not in that form."""
    values = [value for name, value in metadata or () if name.lower() == AUTHORIZATION]
    if not values:
        raise Refused(
            grpc.StatusCode.UNAUTHENTICATED,
            "missing API key: send metadata 'authorization: Bearer <key>'",
        )
    if len(values) > 1:
        raise Refused(grpc.StatusCode.UNAUTHENTICATED, "more than one authorization metadata entry")
    value = values[0]
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
    if not text[: len(_BEARER)].lower() == _BEARER or not text[len(_BEARER) :].strip():
        raise Refused(
            grpc.StatusCode.UNAUTHENTICATED,
            "malformed authorization metadata: expected 'Bearer <key>'",
        )
    return text[len(_BEARER) :].strip()


class Authenticator:
    """Checks keys against the store, remembering answers for ``cache_seconds``."""

    def __init__(
        self,
        store: ApiKeyStore,
        *,
        cache_seconds: float = DEFAULT_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        max_cached: int = MAX_CACHED_KEYS,
    ) -> None:
        self._store = store
        self._ttl = cache_seconds
        self._clock = clock
        self._max = max_cached
        # SHA-256 of the presented key -> (expires at, the key or why it was refused).
        # Hashing keeps plaintext keys out of a long-lived structure.
        self._cache: OrderedDict[bytes, tuple[float, ApiKeyInfo | InvalidApiKey]] = OrderedDict()

    async def authenticate(self, metadata: Metadata) -> ApiKeyInfo:
        """The caller's key; Refused(UNAUTHENTICATED) saying what is wrong, or
        Refused(UNAVAILABLE) when the key store cannot be reached."""
        token = bearer_token(metadata)
        outcome = await self._verified(token)
        if isinstance(outcome, InvalidApiKey):
            raise Refused(grpc.StatusCode.UNAUTHENTICATED, outcome.problem.value)
        return outcome

    @staticmethod
    def authorize(key: ApiKeyInfo, method: str, requirement: Requirement) -> None:
        """Refused(PERMISSION_DENIED) unless ``key`` may call ``method``."""
        if not requirement.known:
            raise Refused(
                grpc.StatusCode.PERMISSION_DENIED,
                f"{method} has no scope assigned, so no key may call it",
            )
        missing = sorted(requirement.scopes - key.scopes)
        if missing:
            raise Refused(
                grpc.StatusCode.PERMISSION_DENIED,
                f"API key {key.id} lacks scope {' and '.join(missing)}, needed by {method}",
            )

    async def _verified(self, token: str) -> ApiKeyInfo | InvalidApiKey:
        digest = hashlib.sha256(token.encode("utf-8", "replace")).digest()
        now = self._clock()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        outcome: ApiKeyInfo | InvalidApiKey
        try:
            outcome = await self._store.verify(token)
            await self._store.mark_used(outcome.id)
        except InvalidApiKey as err:
            outcome = err
        except (SQLAlchemyError, OSError) as err:
            # Fail closed, and retryably: the key may be fine, we cannot tell now.
            log.warning("api key check failed", error=type(err).__name__)
            raise Refused(
                grpc.StatusCode.UNAVAILABLE, "cannot check the API key right now; retry"
            ) from None
        if self._ttl > 0:
            self._cache[digest] = (now + self._ttl, outcome)
            self._cache.move_to_end(digest)
            while len(self._cache) > self._max:
                self._cache.popitem(last=False)
        return outcome


# grpc.RpcMethodHandler: grpcio ships no type information.
Handler: TypeAlias = Any


def _refusing(handler: Handler | None, refused: Refused) -> Handler:
    """A handler of the same kind as ``handler`` that ends the call with ``refused``.

    No request deserializer: the request stays unparsed bytes nobody reads.
    """

    async def refuse(_request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(refused.code, refused.message)

    if handler is not None and handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(refuse)
    if handler is not None and handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(refuse)
    if handler is not None and handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(refuse)
    return grpc.unary_unary_rpc_method_handler(refuse)


def _as_caller(handler: Handler, key: ApiKeyInfo) -> Handler:
    """``handler``, run with ``key`` as the calling key (engine.platform.rpc.caller).

    Set inside the handler's own behaviour rather than here in the interceptor, so
    it holds wherever grpc runs the behaviour, and is reset when it returns. Our
    services' methods are all unary; a streaming method is passed on as it is
    (it runs without a calling key).
    """
    behaviour = handler.unary_unary
    if (
        handler.request_streaming
        or handler.response_streaming
        or not inspect.iscoroutinefunction(behaviour)
    ):
        return handler
    variable = api_key_variable()

    async def run(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        token = variable.set(key.id)
        try:
            return await behaviour(request, context)
        finally:
            variable.reset(token)

    return grpc.unary_unary_rpc_method_handler(
        run,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


class ApiKeyInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self, authenticator: Authenticator) -> None:
        self._authenticator = authenticator

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        method: str = handler_call_details.method
        requirement = requirement_for(method)
        if requirement.open:
            return await continuation(handler_call_details)
        metadata: Metadata = handler_call_details.invocation_metadata
        handler = await continuation(handler_call_details)
        try:
            key = await self._authenticator.authenticate(metadata)
            if handler is None:
                # Authenticated, and no such method: plain UNIMPLEMENTED.
                return None
            self._authenticator.authorize(key, method, requirement)
        except Refused as refused:
            log.info("api call refused", method=method, code=refused.code.name, why=refused.message)
            return _refusing(handler, refused)
        return _as_caller(handler, key)


@asynccontextmanager
async def authenticator_for(settings: Settings) -> AsyncIterator[Authenticator]:
    """An authenticator on the configured database, closed when the context ends."""
    engine = create_engine(settings.resolved_database_url)
    try:
        yield Authenticator(
            ApiKeyStore(create_session_factory(engine)),
            cache_seconds=settings.api_key_cache_seconds,
        )
    finally:
        await engine.dispose()
