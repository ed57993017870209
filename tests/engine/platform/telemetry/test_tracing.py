"""Traces end to end: `aftercare api` and `aftercare worker` as processes, a real
Temporal dev server, the SMTP sink and a real OTLP receiver. StartJourney and
RecordEvent each give one trace, from the gRPC call down to the SMTP send, with no
personal data in any span; without an endpoint nothing is traced."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import opentelemetry.baggage
import opentelemetry.context
import opentelemetry.trace
import pytest
from aftercare.v1 import journey_pb2 as pb
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import ValidationError
from temporalio.client import Client, WorkflowHistory
from temporalio.converter import PayloadConverter
from temporalio.worker import Replayer

from clients import AftercareClient, InvalidRequestError
from engine.cli.samples import sample_order, sample_shipment
from engine.devstack.mail_sink import MailSink, ReceivedMail
from engine.devstack.temporal_server import TemporalDevServer
from engine.platform.codec.payloads import DATA_CONVERTER
from engine.platform.codec.runtime import converter_for, customer_keys_for
from engine.platform.database.migrate import upgrade_database
from engine.platform.settings import Settings
from engine.platform.telemetry.provider_calls import provider_call
from engine.platform.telemetry.tracing import (
    API_SERVICE,
    WORKER_SERVICE,
    JourneyTracingInterceptor,
    RedactingSpanExporter,
    grpc_server_interceptors,
    process_tracing,
    temporal_interceptors,
)
from engine.processes.dev_stack import with_dev_secrets
from tests.support.api_keys import all_scopes_key
from tests.support.databases import sqlite_url
from tests.support.ids import new_order_id
from tests.support.net import free_port
from tests.support.otlp import OtlpReceiver, ReceivedSpan
from tests.support.waiting import eventually
from workflows.erasure import CustomerErasure, ErasureSweep
from workflows.order_journey import OrderJourney

AFTERCARE = Path(sys.executable).parent / "aftercare"

# The customer whose data must appear in no span.
NAME = "Quirinus Tracewell"
PHONE = "+4915123456789"
STREET = "Spurweg 77"

# The recorded journey paths the replay tests replay (tests/workflows/test_replay.py).
HISTORIES = sorted((Path(__file__).parents[3] / "histories").glob("*.json"))


@asynccontextmanager
async def aftercare(command: str, env: dict[str, str], cwd: Path) -> AsyncIterator[None]:
    """``aftercare COMMAND`` running; stopped as a supervisor stops it (SIGTERM)."""
    process = await asyncio.create_subprocess_exec(
        str(AFTERCARE),
        command,
        env=env,
        cwd=cwd,  # no .env of the checkout
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), 60)


async def api_serving(target: str) -> None:
    async def probe() -> bool:
        async with grpc.aio.insecure_channel(target) as channel:
            try:
                answer = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=1
                )
            except grpc.aio.AioRpcError:
                return False
            return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)

    await eventually(probe, bool, seconds=60)


async def mails_of(sink: MailSink, journey_id: str, count: int) -> list[ReceivedMail]:
    async def mine() -> list[ReceivedMail]:
        return [
            mail
            for mail in sink.handler.received
            if mail.message["X-Aftercare-Journey"] == journey_id
        ]

    return await eventually(mine, lambda mails: len(mails) >= count, seconds=60, interval=0.05)


def chain_up(span: ReceivedSpan, spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
    """``span`` and its ancestors, root last; every parent must have been received."""
    by_id = {s.span_id: s for s in spans}
    chain = [span]
    while chain[-1].parent_id is not None:
        parent = by_id.get(chain[-1].parent_id)
        assert parent is not None, f"{chain[-1].name}: parent span never arrived"
        chain.append(parent)
    return chain


def one_tree(trace: list[ReceivedSpan]) -> ReceivedSpan:
    """The trace's root, after checking every span hangs from it."""
    roots = [span for span in trace if span.parent_id is None]
    assert len(roots) == 1, [span.name for span in roots]
    for span in trace:
        assert chain_up(span, trace)[-1] == roots[0]
    return roots[0]


def names(chain: list[ReceivedSpan]) -> list[str]:
    return [span.name for span in chain]


async def test_start_and_event_each_give_one_trace_from_the_call_to_the_smtp_send(
    temporal_server: TemporalDevServer, tmp_path: Path
) -> None:
    database = sqlite_url(tmp_path)
    upgrade_database(database)
    api_key = await all_scopes_key(database)
    secrets = with_dev_secrets(Settings(_env_file=None, state_dir=tmp_path, database_url=database))
    assert secrets.secret_key is not None
    assert secrets.codec_keys is not None
    sink = MailSink("127.0.0.1", 0, None)
    await sink.start()
    grpc_port = free_port()
    order_id = new_order_id("TRC")
    email = f"quirinus.{uuid.uuid4().hex[:8]}@example.com"
    order = sample_order(order_id)
    order.customer.name = NAME
    order.customer.email = email
    order.customer.phone = PHONE
    order.shipping_address.name = NAME
    order.shipping_address.line1 = STREET

    async with OtlpReceiver() as receiver:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("AFTERCARE_") and not k.startswith("OTEL_")
        }
        env.update(
            AFTERCARE_TEMPORAL_ADDRESS=temporal_server.address,
            AFTERCARE_TASK_QUEUE=f"trace-{uuid.uuid4().hex[:8]}",
            AFTERCARE_DATABASE_URL=database,
            AFTERCARE_SMTP_PORT=str(sink.port),
            AFTERCARE_STATE_DIR=str(tmp_path),
            AFTERCARE_GRPC_PORT=str(grpc_port),
            AFTERCARE_SECRET_KEY=secrets.secret_key.get_secret_value(),
            AFTERCARE_CODEC_KEYS=secrets.codec_keys.get_secret_value(),
            AFTERCARE_WORKER_SHUTDOWN_GRACE_SECONDS="1",
            AFTERCARE_LOG_FORMAT="json",
            AFTERCARE_OTLP_ENDPOINT=receiver.endpoint,
        )
        target = f"127.0.0.1:{grpc_port}"
        try:
            async with aftercare("worker", env, tmp_path), aftercare("api", env, tmp_path):
                await api_serving(target)
                async with AftercareClient(target, api_key=api_key) as client:
                    # A refused call is traced too, without the value it refused.
                    refused = pb.Order()
                    refused.CopyFrom(order)
                    refused.customer.email = f"{email.split('@')[0]}@example.test"
                    with pytest.raises(InvalidRequestError, match=r"order\.customer\.email"):
                        await client.start_journey(refused)
                    started = await client.start_journey(order)
                    await mails_of(sink, started.journey_id, 1)
                    await client.record_event(
                        order_id,
                        pb.OrderEvent(
                            event_id="ship-1",
                            type=pb.EVENT_TYPE_SHIPPED,
                            shipment=sample_shipment(order_id),
                        ),
                    )
                    mails = await mails_of(sink, started.journey_id, 2)
            # Both processes have stopped, and flushed their spans on the way out.
        finally:
            await sink.stop()
        spans = receiver.spans

    assert [m.message["X-Aftercare-Step"] for m in mails] == [
        "order_confirmation",
        "shipping_notice",
    ]
    start_calls = [s for s in spans if s.name == "/aftercare.v1.JourneyService/StartJourney"]
    assert [s.attributes["rpc.grpc.status_code"] for s in start_calls] == [
        grpc.StatusCode.INVALID_ARGUMENT.value[0],
        grpc.StatusCode.OK.value[0],
    ]
    start_call = start_calls[1]
    [event_call] = [s for s in spans if s.name == "/aftercare.v1.JourneyService/RecordEvent"]
    assert start_call.service == event_call.service == API_SERVICE
    assert start_call.trace_id != event_call.trace_id

    # StartJourney: the call, the journey's start, its workflow and activities, and the
    # confirmation's SMTP send, in one tree under the call.
    start_trace = [s for s in spans if s.trace_id == start_call.trace_id]
    assert one_tree(start_trace) == start_call
    [confirmation] = [s for s in start_trace if s.name == "smtp send"]
    assert names(chain_up(confirmation, start_trace)) == [
        "smtp send",
        "RunActivity:send_message",
        "StartActivity:send_message",
        "StartWorkflow:OrderJourney",
        start_call.name,
    ]
    assert confirmation.service == WORKER_SERVICE
    assert confirmation.attributes == {
        "aftercare.provider": "smtp",
        "aftercare.operation": "send",
        "aftercare.outcome": "ok",
    }
    [journey_start] = [s for s in start_trace if s.name == "StartWorkflow:OrderJourney"]
    runs = [s for s in start_trace if s.name == "RunWorkflow:OrderJourney"]
    assert runs
    assert {s.parent_id for s in runs} == {journey_start.span_id}
    assert {s.service for s in runs} == {WORKER_SERVICE}

    # RecordEvent: the signal, its handling in the journey and the shipping notice it
    # caused, in the event's own trace, not in the start's.
    event_trace = [s for s in spans if s.trace_id == event_call.trace_id]
    assert one_tree(event_trace) == event_call
    [notice] = [s for s in event_trace if s.name == "smtp send"]
    assert names(chain_up(notice, event_trace)) == [
        "smtp send",
        "RunActivity:send_message",
        "StartActivity:send_message",
        "SignalWorkflow:record_event",
        event_call.name,
    ]
    assert "HandleSignal:record_event" in {s.name for s in event_trace}
    assert len([s for s in spans if s.name == "smtp send"]) == 2

    # Nothing of the customer's in any span: name, address, email, phone.
    local_part = email.split("@")[0]
    forbidden = (NAME, *NAME.split(), STREET, email, local_part, PHONE, PHONE[1:], PHONE[3:])
    for span in spans:
        for text in span.texts:
            for secret in forbidden:
                assert secret.lower() not in text.lower(), (span.name, text)

    # The trace context rides in headers, not commands: the traced journey replays,
    # with the interceptor and without.
    keys = customer_keys_for(secrets)
    try:
        temporal = await Client.connect(
            temporal_server.address, data_converter=converter_for(secrets, keys)
        )
        history = await temporal.get_workflow_handle(started.journey_id).fetch_history()
        for interceptors in ([], [JourneyTracingInterceptor()]):
            replayer = Replayer(
                workflows=[OrderJourney, CustomerErasure, ErasureSweep],
                data_converter=temporal.data_converter,
                interceptors=interceptors,
            )
            await replayer.replay_workflow(history)
    finally:
        await keys.aclose()


async def test_recorded_histories_replay_with_the_tracing_interceptor() -> None:
    replayer = Replayer(
        workflows=[OrderJourney],
        data_converter=DATA_CONVERTER,
        interceptors=[JourneyTracingInterceptor()],
    )
    assert HISTORIES
    for path in HISTORIES:
        text = await asyncio.to_thread(path.read_text)
        history = WorkflowHistory.from_json(f"replay-{path.stem}", text)
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"


def test_only_the_trace_context_goes_into_temporal_headers() -> None:
    # Temporal keeps headers unencrypted: a caller's baggage must not land there.
    tracer = TracerProvider().get_tracer(__name__)
    token = opentelemetry.context.attach(opentelemetry.baggage.set_baggage("customer", NAME))
    try:
        with tracer.start_as_current_span("call"):
            headers = JourneyTracingInterceptor()._context_to_headers({})
    finally:
        opentelemetry.context.detach(token)
    [payload] = headers.values()
    carrier = PayloadConverter.default.from_payloads([payload])[0]
    assert set(carrier) == {"traceparent"}


async def test_without_an_endpoint_nothing_is_traced() -> None:
    settings = Settings(_env_file=None)
    assert settings.otlp_endpoint is None
    assert temporal_interceptors(settings) == []
    assert grpc_server_interceptors(settings) == []
    async with process_tracing(settings, API_SERVICE) as tracing:
        assert not tracing
        # No provider was installed: OpenTelemetry's default, which makes no-op spans.
        assert not isinstance(opentelemetry.trace.get_tracer_provider(), TracerProvider)
        with provider_call("smtp", "send"):
            assert not opentelemetry.trace.get_current_span().is_recording()


@pytest.mark.parametrize("value", ["collector:4317", "grpc://collector:4317", "http://"])
def test_an_endpoint_without_http_or_https_is_refused_by_name(value: str) -> None:
    with pytest.raises(ValidationError, match="otlp_endpoint"):
        Settings(_env_file=None, otlp_endpoint=value)


def test_an_empty_endpoint_means_off() -> None:
    assert Settings(_env_file=None, otlp_endpoint=" ").otlp_endpoint is None


def test_exported_spans_have_addresses_and_numbers_redacted() -> None:
    kept = InMemorySpanExporter()
    provider = TracerProvider()  # not the global one: only this test's spans
    provider.add_span_processor(SimpleSpanProcessor(RedactingSpanExporter(kept)))
    tracer = provider.get_tracer(__name__)
    with (
        pytest.raises(RuntimeError),
        tracer.start_as_current_span("send to jane@example.com", attributes={"to": PHONE}),
    ):
        raise RuntimeError("550 <jane@example.com> refused; call +49 151 23456789")
    [span] = kept.get_finished_spans()
    assert span.name == "send to <email>"
    assert span.attributes == {"to": "<phone>"}
    assert span.status.description == "RuntimeError: 550 <<email>> refused; call <phone>"
    [event] = span.events
    assert event.attributes is not None
    for value in event.attributes.values():
        assert "jane@" not in str(value)
        assert "23456789" not in str(value)
    provider.shutdown()
