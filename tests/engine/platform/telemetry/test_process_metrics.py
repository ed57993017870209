"""Every process serves /metrics: after real work through the real parts, our series
are there with the expected labels and values, beside the Temporal SDK's own."""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from aftercare.v1 import journey_pb2 as pb

from clients import AftercareClient, AuthenticationError, InvalidRequestError
from engine.cli.samples import sample_order
from engine.devstack.mail_sink import MailSink
from engine.devstack.temporal_server import TemporalDevServer
from engine.platform.codec.aes_gcm import ENCODING, KEY_ID_METADATA
from engine.platform.telemetry.runtime import Process
from tests.support.ids import new_order_id
from tests.support.metrics_stack import MetricsStack, metrics_stack
from tests.support.prometheus_text import matching, samples, total
from tests.support.waiting import eventually

JOURNEYS = "aftercare.v1.JourneyService"
# The sample order holds coffee: the consumables plan.
PLAN = "consumables"


@pytest.fixture(scope="module")
async def stack(
    temporal_server: TemporalDevServer,
    mail_sink: MailSink,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[MetricsStack]:
    async with metrics_stack(
        temporal_server.address, mail_sink, tmp_path_factory.mktemp("metrics")
    ) as started:
        yield started


@pytest.fixture(scope="module")
async def order(stack: MetricsStack) -> pb.Order:
    """One journey driven through the API: confirmed, then shipped (two emails)."""
    order = sample_order(new_order_id("MET"))
    started = await stack.client.start_journey(order)
    await stack.client.record_event(
        order.order_id, pb.OrderEvent(event_id="ship-1", type=pb.EVENT_TYPE_SHIPPED)
    )
    await _mails(stack, started.journey_id, 2)
    return order


async def _mails(stack: MetricsStack, journey_id: str, count: int) -> None:
    def mine() -> int:
        return sum(
            1
            for mail in stack.sink.handler.received
            if mail.message["X-Aftercare-Journey"] == journey_id
        )

    await eventually(lambda: asyncio.sleep(0, result=mine()), lambda n: n >= count, seconds=30)


async def _series(stack: MetricsStack, part: Process, name: str, /, **labels: str) -> float:
    """The series' value once it is there (workflow metrics follow the task)."""

    async def probe() -> float:
        return total(await stack.scrape(part), name, **labels)

    return await eventually(probe, lambda value: value > 0, seconds=20)


async def test_sent_emails_are_counted_by_channel_outcome_and_template(
    stack: MetricsStack, order: pb.Order
) -> None:
    assert (
        await _series(
            stack,
            Process.WORKER,
            "aftercare_messages_total",
            channel="email",
            category="transactional",
            template="order_confirmation",
            outcome="sent",
            reason="none",
            process="worker",
        )
        == 1
    )
    text = await stack.scrape(Process.WORKER)
    assert total(text, "aftercare_messages_total", template="shipping_notice", outcome="sent") == 1
    # The SDK's own worker series, on the same endpoint.
    assert matching(text, "temporal_workflow_task_schedule_to_start_latency_count")
    assert matching(text, "temporal_activity_schedule_to_start_latency_count")


async def test_journeys_record_step_lateness_and_event_to_message(
    stack: MetricsStack, order: pb.Order
) -> None:
    count = await _series(
        stack,
        Process.WORKER,
        "aftercare_step_lateness_seconds_count",
        plan=PLAN,
        step="order_confirmation",
        category="transactional",
    )
    assert count == 1
    assert (
        await _series(
            stack,
            Process.WORKER,
            "aftercare_event_to_message_seconds_count",
            plan=PLAN,
            step="shipping_notice",
            event="shipped",
        )
        == 1
    )
    text = await stack.scrape(Process.WORKER)
    assert (
        total(
            text,
            "aftercare_event_to_message_seconds_count",
            step="order_confirmation",
            event="started",
        )
        == 1
    )
    # The catalogue's buckets, not the SDK's defaults.
    buckets = {
        sample.labels["le"] for sample in matching(text, "aftercare_step_lateness_seconds_bucket")
    }
    assert {"0.1", "86400", "+Inf"} <= buckets


async def test_api_calls_are_counted_by_method_and_code(
    stack: MetricsStack, order: pb.Order
) -> None:
    with pytest.raises(InvalidRequestError):
        await stack.client.start_journey(pb.Order(order_id=new_order_id("BAD")))
    async with AftercareClient(stack.settings.grpc_target) as anonymous:
        with pytest.raises(AuthenticationError):
            await anonymous.get_journey(order.order_id)
    text = await stack.scrape(Process.API)
    assert (
        total(
            text, "aftercare_api_requests_total", service=JOURNEYS, method="StartJourney", code="OK"
        )
        == 1
    )
    assert (
        total(
            text,
            "aftercare_api_requests_total",
            method="StartJourney",
            code="INVALID_ARGUMENT",
            process="api",
        )
        == 1
    )
    assert (
        total(text, "aftercare_api_requests_total", method="GetJourney", code="UNAUTHENTICATED")
        == 1
    )
    assert total(text, "aftercare_api_request_seconds_count", method="RecordEvent", code="OK") == 1


async def test_http_requests_are_counted_by_route_template(stack: MetricsStack) -> None:
    token = "not-a-real-token-" + "x" * 20
    async with httpx.AsyncClient(base_url=stack.http_url) as http:
        assert (await http.get("/healthz")).status_code == 200
        refused = await http.get(f"/u/{token}")
        assert refused.status_code >= 400
        assert (await http.get("/no/such/page")).status_code == 404
    text = await stack.scrape(Process.HTTP)
    assert (
        total(text, "aftercare_http_requests_total", route="/healthz", method="GET", status="200")
        == 1
    )
    assert (
        total(
            text,
            "aftercare_http_requests_total",
            route="/u/{token}",
            method="GET",
            status=str(refused.status_code),
        )
        == 1
    )
    assert total(text, "aftercare_http_requests_total", route="unmatched", status="404") == 1
    assert total(text, "aftercare_http_request_seconds_count", route="/u/{token}") == 1
    assert token not in text


async def test_codec_errors_are_counted_by_operation_and_reason(stack: MetricsStack) -> None:
    foreign = {
        "payloads": [
            {
                "metadata": {
                    "encoding": base64.b64encode(ENCODING).decode(),
                    KEY_ID_METADATA: base64.b64encode(b"retired-long-ago").decode(),
                },
                "data": base64.b64encode(b"\0" * 40).decode(),
            }
        ]
    }
    token = stack.settings.codec_token
    assert token is not None
    async with httpx.AsyncClient(base_url=stack.codec_url) as http:
        answer = await http.post(
            "/decode",
            json=foreign,
            headers={"Authorization": f"Bearer {token.get_secret_value()}"},
        )
    assert answer.status_code == 400
    text = await stack.scrape(Process.CODEC)
    assert (
        total(
            text,
            "aftercare_codec_errors_total",
            operation="decode",
            reason="unknown_key",
            process="codec",
        )
        == 1
    )


async def test_backlog_gauges_are_sampled_by_the_worker(stack: MetricsStack) -> None:
    text = await stack.scrape(Process.WORKER)
    assert matching(text, "aftercare_messages_waiting", status="waiting")
    assert matching(text, "aftercare_messages_oldest_waiting_seconds", status="sending")
    assert matching(text, "aftercare_sending_pauses", scope="step")


async def test_no_label_holds_the_customers_data(stack: MetricsStack, order: pb.Order) -> None:
    customer = order.customer
    personal = [customer.email, customer.phone, customer.name, customer.id, order.order_id]
    personal += [part for part in re.split(r"[@+ .]", customer.email) if len(part) > 3]
    for process in Process:
        text = await stack.scrape(process)
        values = {value for sample in samples(text) for value in sample.labels.values()}
        for secret in filter(None, personal):
            leaked = [value for value in values if secret.lower() in value.lower()]
            assert not leaked, (process, secret, leaked)
