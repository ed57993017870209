"""API keys over real gRPC: every method of every aftercare.v1 service refuses a
missing, malformed, wrong or revoked key (UNAUTHENTICATED) and a key without its
scope (PERMISSION_DENIED), and a refused call writes nothing: not to Temporal, not
to the database. The methods come from the proto descriptors, so a new RPC is
covered (or fails here for want of a scope or a sample request) without edits."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from aftercare.v1 import devices_pb2 as dpb
from aftercare.v1 import journey_pb2 as pb
from aftercare.v1 import operations_pb2 as opb
from aftercare.v1 import preferences_pb2 as ppb
from aftercare.v1 import reports_pb2 as rpb
from aftercare.v1 import subscriptions_pb2 as spb
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from sqlalchemy import select, text
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from engine.access.api_keys import ApiKeyStore, parse_key
from engine.access.auth import ApiKeyInterceptor, Authenticator, Refused
from engine.access.scopes import ALL_SCOPES, METHOD_SCOPES, Scope, requirement_for
from engine.cli.samples import sample_order, sample_shipment
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.database.migrate import upgrade_database
from engine.platform.database.tables import ApiKeyRecord, Base
from engine.platform.rpc.caller import calling_api_key
from engine.platform.settings import Settings
from engine.processes.api import serving_api
from engine.processes.dev_stack import with_dev_secrets
from tests.support.api_keys import bearer, create_key
from tests.support.api_methods import ApiMethod, api_methods
from tests.support.databases import sqlite_url
from tests.support.ids import new_order_id
from tests.support.net import free_port

METHODS = api_methods()
CALL_TIMEOUT = 30.0
# The server's bound on a handler's run time, well below the client's deadline.
SERVER_BOUND_SECONDS = 5.0
# Queries need a worker to answer; this API has no worker, so the server's bound
# ends those calls. (Erasure terminates journeys, which needs no worker: it answers.)
ANSWERED_BY_A_WORKER = frozenset({"GetJourney"})
# Calls naming something that does not exist here: NOT_FOUND shows the call got through.
ANSWERED_NOT_FOUND = frozenset(
    {"ResumeSending", "GetBulkOperation", "StopExperiment", "RemoveDevice", "RemoveSubscription"}
)


@dataclass(frozen=True)
class Ids:
    """A running journey, an order with none yet, and their (own) customer."""

    existing_order: str
    new_order: str
    customer: str


def order_of(order_id: str, customer: str) -> pb.Order:
    order = sample_order(order_id)
    # A customer of this test alone: erasure and listing act on every journey of one.
    order.customer.id = customer
    return order


# One request per method, such that the handler, if it ran, would write (or read)
# something. A method without one fails the tests: add it here.
REQUESTS: dict[str, Callable[[Ids], Message]] = {
    "StartJourney": lambda ids: pb.StartJourneyRequest(order=order_of(ids.new_order, ids.customer)),
    "RecordEvent": lambda ids: pb.RecordEventRequest(
        order_id=ids.existing_order,
        event=pb.OrderEvent(
            event_id=uuid.uuid4().hex,
            type=pb.EVENT_TYPE_SHIPPED,
            shipment=sample_shipment(ids.existing_order),
        ),
    ),
    "GetJourney": lambda ids: pb.GetJourneyRequest(order_id=ids.existing_order),
    "ListJourneys": lambda ids: pb.ListJourneysRequest(customer_id=ids.customer),
    "CancelJourney": lambda ids: pb.CancelJourneyRequest(
        order_id=ids.existing_order, reason="auth test"
    ),
    "GetPreferences": lambda ids: ppb.GetPreferencesRequest(customer_id=ids.customer),
    "UpdatePreferences": lambda ids: ppb.UpdatePreferencesRequest(
        customer_id=ids.customer, locale="fr-FR", source="auth-test"
    ),
    "Unsubscribe": lambda ids: ppb.UnsubscribeRequest(customer_id=ids.customer),
    "EraseCustomer": lambda ids: ppb.EraseCustomerRequest(customer_id=ids.customer),
    "PauseSending": lambda ids: opb.PauseSendingRequest(
        scope=opb.PauseScope(kind=opb.PAUSE_SCOPE_KIND_STEP, value="cross_sell"),
        reason="auth test",
    ),
    "ResumeSending": lambda ids: opb.ResumeSendingRequest(pause_id="pause-0123456789abcdef"),
    "ListPauses": lambda ids: opb.ListPausesRequest(),
    "CountJourneys": lambda ids: opb.CountJourneysRequest(
        filter=opb.JourneyFilter(customer_id=ids.customer)
    ),
    # A dry run: it reads Temporal; a real one would start a batch operation.
    "StartBulkOperation": lambda ids: opb.StartBulkOperationRequest(
        filter=opb.JourneyFilter(customer_id=ids.customer),
        action=opb.BULK_ACTION_CANCEL,
        dry_run=True,
    ),
    "GetBulkOperation": lambda ids: opb.GetBulkOperationRequest(
        job_id="aftercare-cancel-0123456789abcdef"
    ),
    "GetPlanReport": lambda ids: rpb.GetPlanReportRequest(plan="default"),
    "StopExperiment": lambda ids: rpb.StopExperimentRequest(
        experiment="no-such-experiment", winner="b"
    ),
    "RegisterDevice": lambda ids: dpb.RegisterDeviceRequest(
        customer_id=ids.customer,
        token="eAuthTestToken:APA91bH_auth_test",
        platform=dpb.DEVICE_PLATFORM_ANDROID,
    ),
    "RemoveDevice": lambda ids: dpb.RemoveDeviceRequest(
        customer_id=ids.customer, token="eAuthTestToken:APA91bH_auth_test"
    ),
    "ListDevices": lambda ids: dpb.ListDevicesRequest(customer_id=ids.customer),
    "CreateSubscription": lambda ids: spb.CreateSubscriptionRequest(
        url="https://crm.example.test/aftercare", event_types=["message.sent"]
    ),
    "ListSubscriptions": lambda ids: spb.ListSubscriptionsRequest(),
    "RemoveSubscription": lambda ids: spb.RemoveSubscriptionRequest(
        subscription_id="sub_000000000000000000000000"
    ),
}


def request_for(method: ApiMethod, ids: Ids) -> Message:
    if method.name not in REQUESTS:
        pytest.fail(f"no sample request for {method}: add one to REQUESTS in {__file__}")
    return REQUESTS[method.name](ids)


@dataclass
class SecuredApi:
    settings: Settings
    temporal: Client
    database_url: str
    ids: Ids
    keys: dict[str, str]  # "all", "revoked", "without:<scope>"

    @property
    def target(self) -> str:
        return self.settings.grpc_target


async def call(
    target: str, method: ApiMethod, request: Message, metadata: tuple[tuple[str, str], ...]
) -> tuple[grpc.StatusCode, str, Any]:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = channel.unary_unary(
            method.path,
            request_serializer=method.request.SerializeToString,
            response_deserializer=method.response.FromString,
        )
        try:
            reply = await stub(request, metadata=metadata, timeout=CALL_TIMEOUT)
        except grpc.aio.AioRpcError as err:
            return err.code(), err.details() or "", None
        return grpc.StatusCode.OK, "", reply


@pytest.fixture(scope="module")
async def api(
    temporal_client: Client, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[SecuredApi]:
    state_dir = tmp_path_factory.mktemp("auth")
    database_url = sqlite_url(state_dir)
    upgrade_database(database_url)
    settings = Settings(
        _env_file=None,
        state_dir=state_dir,
        temporal_address="unused:0",
        task_queue=f"auth-{uuid.uuid4().hex[:8]}",
        database_url=database_url,
        grpc_port=free_port(),
        # Revocation takes effect at once here; the cache has its own test.
        api_key_cache_seconds=0,
        grpc_call_timeout_seconds=SERVER_BOUND_SECONDS,
    )
    settings = with_dev_secrets(settings)  # kept under the state dir, as `aftercare run` does
    keys = {"all": await create_key(database_url, sorted(ALL_SCOPES))}
    for scope in Scope:
        keys[f"without:{scope}"] = await create_key(database_url, sorted(ALL_SCOPES - {scope}))
    revoked = await create_key(database_url, sorted(ALL_SCOPES))
    engine = create_engine(database_url)
    await ApiKeyStore(create_session_factory(engine)).revoke(parse_key(revoked)[0])
    await engine.dispose()
    keys["revoked"] = revoked
    ids = Ids(new_order_id("AUTH"), new_order_id("AUTHNEW"), new_order_id("cus-auth"))
    # No worker: a refused call must not even reach Temporal, and an accepted
    # write (a start, a signal) shows in the history without one.
    async with serving_api(temporal_client, settings, grace_seconds=1):
        secured = SecuredApi(settings, temporal_client, database_url, ids, keys)
        everything = bearer(keys["all"])
        by_name = {method.name: method for method in METHODS}
        for name in ("StartJourney", "UpdatePreferences"):
            prepare = (
                pb.StartJourneyRequest(order=order_of(ids.existing_order, ids.customer))
                if name == "StartJourney"
                else REQUESTS[name](ids)
            )
            code, details, _ = await call(secured.target, by_name[name], prepare, everything)
            assert code == grpc.StatusCode.OK, details
        yield secured


async def snapshot(api: SecuredApi) -> tuple[Any, ...]:
    """Everything a call could have changed: every row of our tables (but the keys'
    last use) and the test's journeys in Temporal."""
    engine = create_engine(api.database_url)
    rows: dict[str, list[tuple[Any, ...]]] = {}
    try:
        async with engine.connect() as connection:
            for table in Base.metadata.sorted_tables:
                if table.name == ApiKeyRecord.__tablename__:
                    continue
                result = await connection.execute(select(table))
                rows[table.name] = sorted(tuple(map(repr, row)) for row in result)
            version = (await connection.execute(text("SELECT 1"))).scalar()
    finally:
        await engine.dispose()
    existing = api.temporal.get_workflow_handle(f"order-{api.ids.existing_order}")
    described = await existing.describe()
    history = [event.event_type for event in (await existing.fetch_history()).events]
    try:
        await api.temporal.get_workflow_handle(f"order-{api.ids.new_order}").describe()
        new_exists = True
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
        new_exists = False
    return rows, version, described.status, history, new_exists


async def assert_refused_and_unchanged(
    api: SecuredApi,
    method: ApiMethod,
    metadata: tuple[tuple[str, str], ...],
    code: grpc.StatusCode,
) -> str:
    before = await snapshot(api)
    got, details, _ = await call(api.target, method, request_for(method, api.ids), metadata)
    assert got == code, f"{method}: {got.name} {details}"
    assert await snapshot(api) == before, f"{method} changed something though refused"
    return details


def secret_of(key: str) -> str:
    return parse_key(key)[1]


def test_every_method_is_unary_so_the_table_below_can_call_it() -> None:
    assert METHODS
    assert not any(m.client_streaming or m.server_streaming for m in METHODS)


async def test_the_prepared_state_exists(api: SecuredApi) -> None:
    # Guards "nothing changed": there is a journey and stored preferences to change.
    rows, _, _, history, new_exists = await snapshot(api)
    assert rows["customer_preferences"]
    assert history
    assert not new_exists


@pytest.mark.parametrize("method", METHODS, ids=str)
async def test_a_call_without_a_key_is_unauthenticated(api: SecuredApi, method: ApiMethod) -> None:
    details = await assert_refused_and_unchanged(api, method, (), grpc.StatusCode.UNAUTHENTICATED)
    assert "missing API key" in details


@pytest.mark.parametrize("method", METHODS, ids=str)
async def test_a_call_with_another_scheme_is_unauthenticated(
    api: SecuredApi, method: ApiMethod
) -> None:
    metadata = (("authorization", f"Basic {api.keys['all']}"),)
    details = await assert_refused_and_unchanged(
        api, method, metadata, grpc.StatusCode.UNAUTHENTICATED
    )
    assert "malformed authorization" in details
    assert secret_of(api.keys["all"]) not in details


@pytest.mark.parametrize("method", METHODS, ids=str)
async def test_a_malformed_key_is_unauthenticated(api: SecuredApi, method: ApiMethod) -> None:
    details = await assert_refused_and_unchanged(
        api, method, bearer("not-a-key"), grpc.StatusCode.UNAUTHENTICATED
    )
    assert "malformed API key" in details
    assert "not-a-key" not in details


@pytest.mark.parametrize("method", METHODS, ids=str)
async def test_a_wrong_key_is_unauthenticated(api: SecuredApi, method: ApiMethod) -> None:
    good = api.keys["all"]
    wrong = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    details = await assert_refused_and_unchanged(
        api, method, bearer(wrong), grpc.StatusCode.UNAUTHENTICATED
    )
    assert details == "unknown API key"


@pytest.mark.parametrize("method", METHODS, ids=str)
async def test_a_revoked_key_is_unauthenticated(api: SecuredApi, method: ApiMethod) -> None:
    details = await assert_refused_and_unchanged(
        api, method, bearer(api.keys["revoked"]), grpc.StatusCode.UNAUTHENTICATED
    )
    assert details == "API key revoked"


UNDER_SCOPED = [
    pytest.param(method, scope, id=f"{method}-without-{scope}")
    for method in METHODS
    for scope in sorted(METHOD_SCOPES.get(method.path, ()))
]


def test_every_method_has_an_under_scoped_case() -> None:
    assert {str(case.values[0]) for case in UNDER_SCOPED} == {m.path for m in METHODS}


@pytest.mark.parametrize(("method", "scope"), UNDER_SCOPED)
async def test_a_key_without_the_scope_is_permission_denied(
    api: SecuredApi, method: ApiMethod, scope: Scope
) -> None:
    # The key holds every scope but this one: only the missing scope can refuse it.
    details = await assert_refused_and_unchanged(
        api, method, bearer(api.keys[f"without:{scope}"]), grpc.StatusCode.PERMISSION_DENIED
    )
    assert scope.value in details
    assert method.path in details


@pytest.mark.parametrize("method", METHODS, ids=str)
async def test_a_key_with_exactly_the_needed_scopes_may_call(
    api: SecuredApi, method: ApiMethod
) -> None:
    scopes = sorted(requirement_for(method.path).scopes)
    key = await create_key(api.database_url, scopes, name=f"exact {method.name}")
    # Ids of this test alone, so that a write (cancel, erase) touches nothing shared.
    ids = Ids(new_order_id("EXACT"), new_order_id("EXACTNEW"), new_order_id("cus-exact"))
    start = next(m for m in METHODS if m.name == "StartJourney")
    prepared = pb.StartJourneyRequest(order=order_of(ids.existing_order, ids.customer))
    code, details, _ = await call(api.target, start, prepared, bearer(api.keys["all"]))
    assert code == grpc.StatusCode.OK, details

    code, details, _ = await call(api.target, method, request_for(method, ids), bearer(key))
    if method.name in ANSWERED_BY_A_WORKER:
        assert code == grpc.StatusCode.DEADLINE_EXCEEDED, f"{method}: {code.name} {details}"
    elif method.name in ANSWERED_NOT_FOUND:
        assert code == grpc.StatusCode.NOT_FOUND, f"{method}: {code.name} {details}"
    else:
        assert code == grpc.StatusCode.OK, f"{method}: {code.name} {details}"


async def test_the_server_stops_a_handler_that_runs_too_long(api: SecuredApi) -> None:
    # GetJourney queries the journey, which no worker here answers: without the
    # server's bound it would run until the client's (much later) deadline.
    method = next(m for m in METHODS if m.name == "GetJourney")
    request = request_for(method, api.ids)
    code, details, _ = await call(api.target, method, request, bearer(api.keys["all"]))
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert details == f"the server stopped this call after {SERVER_BOUND_SECONDS:g} s"


async def test_health_and_reflection_need_no_key(api: SecuredApi) -> None:
    async with grpc.aio.insecure_channel(api.target) as channel:
        health = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="aftercare.v1.JourneyService"), timeout=10
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        answers = reflection.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10
        )
        services = {s.name async for a in answers for s in a.list_services_response.service}
    assert {"aftercare.v1.JourneyService", "aftercare.v1.PreferencesService"} <= services


async def test_an_unknown_method_of_ours_is_refused_or_unimplemented(api: SecuredApi) -> None:
    unknown = ApiMethod(
        path="/aftercare.v1.JourneyService/DropAllJourneys",
        service="aftercare.v1.JourneyService",
        name="DropAllJourneys",
        request=pb.GetJourneyRequest,
        response=pb.GetJourneyResponse,
        client_streaming=False,
        server_streaming=False,
    )
    request = pb.GetJourneyRequest(order_id=api.ids.existing_order)
    code, _, _ = await call(api.target, unknown, request, ())
    assert code == grpc.StatusCode.UNAUTHENTICATED
    code, _, _ = await call(api.target, unknown, request, bearer(api.keys["all"]))
    assert code == grpc.StatusCode.UNIMPLEMENTED


# --- the key cache ------------------------------------------------------------------


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_verified_keys_are_cached_for_the_ttl_then_checked_again(
    tmp_path: Path,
) -> None:
    database_url = sqlite_url(tmp_path)
    upgrade_database(database_url)
    engine = create_engine(database_url)
    try:
        store = ApiKeyStore(create_session_factory(engine))
        created = await store.create("svc", ["journeys:read"])
        clock = ManualClock()
        authenticator = Authenticator(store, cache_seconds=5, clock=clock)
        metadata = bearer(created.token)

        assert (await authenticator.authenticate(metadata)).id == created.info.id
        first_use = (await store.get(created.info.id)).last_used_at
        assert first_use is not None

        await store.revoke(created.info.id)
        clock.now += 4.9
        # Within the TTL the cached answer stands (and the database is not asked:
        # the last use is not moved either).
        assert (await authenticator.authenticate(metadata)).id == created.info.id
        assert (await store.get(created.info.id)).last_used_at == first_use

        clock.now += 0.2
        with pytest.raises(Refused) as refused:
            await authenticator.authenticate(metadata)
        assert refused.value.code == grpc.StatusCode.UNAUTHENTICATED
        assert refused.value.message == "API key revoked"
    finally:
        await engine.dispose()


async def test_the_cache_is_bounded(tmp_path: Path) -> None:
    database_url = sqlite_url(tmp_path)
    upgrade_database(database_url)
    engine = create_engine(database_url)
    try:
        store = ApiKeyStore(create_session_factory(engine))
        authenticator = Authenticator(store, cache_seconds=60, max_cached=3)
        for n in range(10):
            with pytest.raises(Refused):
                await authenticator.authenticate(bearer(f"ak_{n:016x}_{'A' * 43}"))
        assert len(authenticator._cache) == 3
    finally:
        await engine.dispose()


async def test_an_unreachable_key_store_refuses_as_unavailable(tmp_path: Path) -> None:
    # A database that was never migrated: the key table is missing.
    engine = create_engine(sqlite_url(tmp_path))
    try:
        authenticator = Authenticator(ApiKeyStore(create_session_factory(engine)))
        with pytest.raises(Refused) as refused:
            await authenticator.authenticate(bearer(f"ak_{'0' * 16}_{'A' * 43}"))
        assert refused.value.code == grpc.StatusCode.UNAVAILABLE
    finally:
        await engine.dispose()


async def test_each_handler_knows_the_key_that_called_it(tmp_path: Path) -> None:
    """The interceptor names the calling key to the handler (the consent trail
    records it), per call: concurrent calls with different keys each see their own,
    and nothing outside a call sees any."""
    database_url = sqlite_url(tmp_path)
    upgrade_database(database_url)
    tokens = [await create_key(database_url, sorted(ALL_SCOPES)) for _ in range(2)]
    engine = create_engine(database_url)

    async def who_calls(_request: bytes, _context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        await asyncio.sleep(0.05)  # so that the calls overlap
        return (calling_api_key() or "nobody").encode()

    server = grpc.aio.server(
        interceptors=[ApiKeyInterceptor(Authenticator(ApiKeyStore(create_session_factory(engine))))]
    )
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "aftercare.v1.PreferencesService",
                {"GetPreferences": grpc.unary_unary_rpc_method_handler(who_calls)},
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = channel.unary_unary("/aftercare.v1.PreferencesService/GetPreferences")
            callers = [tokens[index % 2] for index in range(10)]
            replies = await asyncio.gather(
                *(stub(b"", metadata=bearer(token), timeout=CALL_TIMEOUT) for token in callers)
            )
        assert [reply.decode() for reply in replies] == [parse_key(t)[0] for t in callers]
        assert calling_api_key() is None
    finally:
        await server.stop(None)
        await engine.dispose()
