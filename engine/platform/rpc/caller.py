"""Who is calling the gRPC API: the API key the auth interceptor verified.

The interceptor (``engine.access.auth``) sets it around each handler it lets
through; handlers that record who did something (the consent trail,
``engine.customers.service``) read it. It lives here, below both, because the
access and customers domains may not import each other. A ContextVar, so each
call sees its own key, however many run at once: every call runs in its own
task, and the interceptor resets the value when the handler ends.
"""

from __future__ import annotations

from contextvars import ContextVar

# The public id of the calling API key (``api_keys.id``); never the secret.
_API_KEY_ID: ContextVar[str | None] = ContextVar("aftercare_api_key_id", default=None)


def calling_api_key() -> str | None:
    """The id of the API key of the call being handled; None outside a call that
    the interceptor authenticated."""
    return _API_KEY_ID.get()


def api_key_variable() -> ContextVar[str | None]:
    """The variable itself, for the interceptor that sets it."""
    return _API_KEY_ID
