"""PreferencesService wired to its database, and the full API server built on it,
for ``aftercare run`` and ``aftercare api``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from temporalio.client import Client

from activities.choose_plan import deployment_plans
from engine.access.auth import authenticator_for
from engine.customers.erasure import CustomerEraser, DataKeys, RecipientHasher
from engine.customers.preferences import PreferenceStore
from engine.customers.service import PreferencesServicer
from engine.journeys.directory import JourneyDirectory
from engine.messaging.ledger import MessageLedger
from engine.platform.codec.customer_codec import customer_keys_of
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.links.secret import load_or_create_secret
from engine.platform.settings import Settings
from engine.processes.api import ApiServer, build_server


class NoCustomerKeys:
    """For a client whose codec has no per-customer data keys (payloads encrypted
    with the service-wide keys only, as in some tests): erasure has no key to
    destroy. Never the case for ``engine.temporal.connect``'s clients."""

    async def destroy(self, customer_id: str) -> bool:
        return False


@dataclass(frozen=True)
class PreferencesParts:
    """What the API server needs: the directory (now able to notify journeys and to
    start them with stored preferences) and the servicer."""

    directory: JourneyDirectory
    servicer: PreferencesServicer
    store: PreferenceStore


@asynccontextmanager
async def preferences_parts(
    client: Client, settings: Settings, keys: DataKeys | None = None
) -> AsyncIterator[PreferencesParts]:
    """Open the database and build the parts; closed when the context ends.

    ``keys``: the customer key store erasure destroys keys in; by default the one
    behind the client's codec (:func:`customer_keys_of`), which the client and so
    the journeys it starts encrypt with. Give the same store the worker and the
    codec server use, so a destroyed key is evicted from their caches at once.
    """
    if keys is None:
        keys = customer_keys_of(client)
    engine = create_engine(settings.resolved_database_url)
    sessions = create_session_factory(engine)
    try:
        store = PreferenceStore(sessions)
        plans = deployment_plans(settings.plans_dir, frequency_caps=settings.frequency_caps)
        directory = JourneyDirectory(client, settings.task_queue, store, plans)
        eraser = CustomerEraser(
            directory,
            store,
            MessageLedger(sessions),
            keys if keys is not None else NoCustomerKeys(),
            RecipientHasher(load_or_create_secret(settings)),
            sessions,
        )
        yield PreferencesParts(directory, PreferencesServicer(store, directory, eraser), store)
    finally:
        await engine.dispose()


@dataclass(frozen=True)
class ServingApi:
    """The started API server and the preferences parts behind it."""

    server: ApiServer
    parts: PreferencesParts


@asynccontextmanager
async def serving_api(
    client: Client,
    settings: Settings,
    keys: DataKeys | None = None,
    *,
    grace_seconds: float = 5.0,
) -> AsyncIterator[ServingApi]:
    """The full API server for ``client`` and ``settings``, started: JourneyService
    with the preference store behind its directory, PreferencesService, the API-key
    check, TLS and limits from ``settings``. Stopped (calls in flight given
    ``grace_seconds``) and its database closed when the context ends.

    ``keys``: as for :func:`preferences_parts`.
    """
    async with (
        authenticator_for(settings) as authenticator,
        preferences_parts(client, settings, keys) as parts,
    ):
        server = build_server(
            parts.directory,
            settings.grpc_target,
            parts.servicer,
            authenticator=authenticator,
            settings=settings,
        )
        await server.start()
        try:
            yield ServingApi(server, parts)
        finally:
            await server.stop(grace_seconds)
