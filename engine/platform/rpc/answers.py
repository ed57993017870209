"""Running one RPC and turning its failures into status codes, for every servicer.

Each servicer method parses its request (raising InvalidRequest), calls the
directory or a store, and builds the reply; :func:`answered` wraps it so that what
can go wrong for every service (a bad request, Temporal or the database out of
reach, a bug) is answered the same way wherever it happens, and the service is
asked about its own failures.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias, TypeVar

import grpc
from sqlalchemy import exc as db
from temporalio.service import RPCError

from engine.platform.logging import get_logger
from engine.platform.rpc.status import invalid_argument
from engine.platform.rpc.violations import InvalidRequest

log = get_logger(__name__)

Reply = TypeVar("Reply")
Request = TypeVar("Request")
Servicer = TypeVar("Servicer")
Method: TypeAlias = Callable[[Servicer, Request, Any], Awaitable[Reply]]

# A status with details (abort_with_status) or a plain code and message (abort).
Refusal: TypeAlias = grpc.Status | tuple[grpc.StatusCode, str]
# The service's own failures: a refusal for those it knows, None for the rest
# (answered INTERNAL without detail).
Refuse: TypeAlias = Callable[[Exception], Refusal | None]

# Our database out of reach (connection refused or dropped, pool exhausted, SQLite
# locked past its timeout): nothing was decided, so the caller may retry. Other
# database errors (a constraint, a bad statement) are bugs and stay INTERNAL.
DATABASE_UNREACHABLE = (db.OperationalError, db.InterfaceError, db.TimeoutError, OSError)


async def answer(
    context: grpc.aio.ServicerContext,
    method: str,
    work: Callable[[], Awaitable[Reply]],
    *,
    refuse: Refuse,
    unavailable: Callable[[RPCError], str],
) -> Reply:
    """Run one call: INVALID_ARGUMENT for a bad request, UNAVAILABLE (message from
    ``unavailable``) when Temporal cannot be reached, UNAVAILABLE when our database
    cannot, ``refuse``'s answer for the service's own failures, INTERNAL for the rest."""
    try:
        return await work()
    except InvalidRequest as err:
        await context.abort_with_status(invalid_argument(err))
    except RPCError as err:
        # Temporal itself is unreachable or overloaded: the caller may retry.
        log.warning("temporal call failed", method=method, status=str(err.status), error=str(err))
        await context.abort(grpc.StatusCode.UNAVAILABLE, unavailable(err))
    except Exception as err:
        refusal = refuse(err)
        if refusal is None and isinstance(err, DATABASE_UNREACHABLE):
            log.warning("database call failed", method=method, error=type(err).__name__)
            refusal = (grpc.StatusCode.UNAVAILABLE, "the database is unreachable; retry")
        if refusal is None:
            # A bug: logged here with its traceback; the caller learns nothing of
            # our internals (grpc's default answer is UNKNOWN with the exception's text).
            log.exception("call failed", method=method)
            refusal = (grpc.StatusCode.INTERNAL, "internal error; the server logged it")
        # Status first: the one rpc_status builds is a tuple too.
        if isinstance(refusal, grpc.Status):
            await context.abort_with_status(refusal)
        else:
            code, message = refusal
            await context.abort(code, message)
    raise AssertionError("unreachable: abort raises")  # pragma: no cover


def answered(
    *, refuse: Refuse, unavailable: Callable[[RPCError], str]
) -> Callable[[Method[Servicer, Request, Reply]], Method[Servicer, Request, Reply]]:
    """A decorator for servicer methods: the method's failures become status codes
    (see :func:`answer`), named in logs by the method's name."""

    def decorate(method: Method[Servicer, Request, Reply]) -> Method[Servicer, Request, Reply]:
        @functools.wraps(method)
        async def handler(
            servicer: Servicer, request: Request, context: grpc.aio.ServicerContext
        ) -> Reply:
            return await answer(
                context,
                method.__name__,
                lambda: method(servicer, request, context),
                refuse=refuse,
                unavailable=unavailable,
            )

        return handler

    return decorate
