"""A real Prometheus (Debian's package) scraping the running stack: every part is up,
the journeys driven show in PromQL, and every query of the dashboard and every alert
rule's expression runs against live data without an error.

The stack is the whole service in this process, each part on its own /metrics
(tests/support/metrics_stack.py); Prometheus scrapes the four every second with the
alert rules loaded, on its own throwaway database and a free port.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aftercare.v1 import journey_pb2 as pb

from clients import InvalidRequestError
from engine.cli.samples import sample_order
from engine.devstack.mail_sink import MailSink
from engine.devstack.temporal_server import TemporalDevServer
from engine.platform.telemetry import catalogue
from tests.support.ids import new_order_id
from tests.support.metrics_stack import MetricsStack, metrics_stack
from tests.support.waiting import eventually
from tests.tools.test_screenshots import png_size
from tools import dashboard_screenshots
from tools.dashboard_queries import (
    ALERT_RULES,
    concrete,
    load_dashboard,
    panel_queries,
    rule_expressions,
)
from tools.prometheus_server import INSTALL_HINT, PrometheusServer, find_prometheus

JOURNEYS = 3
JOBS = ("aftercare-api", "aftercare-worker", "aftercare-http", "aftercare-codec")
# Grafana's $__rate_interval for a 1 s scrape is a few seconds; a wider window still
# holds the whole test's samples.
RATE_INTERVAL = "1m"
# Panels whose series the traffic below makes: their queries must return data, not
# merely run. (Failures, duplicates, codec errors and pauses need faults or
# operators, which this test does not stage.)
PANELS_WITH_DATA = (
    "Messages sent per channel",
    "Send failure ratio",
    "Provider call latency p50 / p95",
    "Step lateness p95",
    "Event to message p95",
    "Messages waiting",
    "Pauses in force",
    "API requests by method and code",
    "API latency p95",
    "API error ratio",
    "HTTP requests by route and status",
    "HTTP latency p95",
    "Processes up",
    "Workflow task schedule-to-start p95",
    "Activity schedule-to-start p95",
    "Sticky cache size",
    "Task slots available",
)


@pytest.fixture(scope="module")
async def stack(
    temporal_server: TemporalDevServer,
    mail_sink: MailSink,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[MetricsStack]:
    async with metrics_stack(
        temporal_server.address, mail_sink, tmp_path_factory.mktemp("scraped")
    ) as started:
        yield started


@pytest.fixture(scope="module")
async def prometheus(
    stack: MetricsStack, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[PrometheusServer]:
    if find_prometheus() is None:
        pytest.fail(INSTALL_HINT)
    jobs = {f"aftercare-{process}": [address] for process, address in stack.targets().items()}
    assert sorted(jobs) == sorted(JOBS)
    log = tmp_path_factory.mktemp("prometheus") / "prometheus.log"
    async with PrometheusServer(jobs, rule_files=[ALERT_RULES], log_file=log) as server:
        yield server


@pytest.fixture(scope="module")
async def driven(stack: MetricsStack, prometheus: PrometheusServer) -> int:
    """JOURNEYS journeys confirmed by email (one also shipped), one invalid call and
    a visit to the HTTP app; returns the number of confirmation emails."""
    await drive(stack, JOURNEYS)
    return JOURNEYS


async def drive(stack: MetricsStack, journeys: int) -> None:
    """``journeys`` journeys confirmed by email (the first also shipped), one invalid
    call and a visit to the HTTP app."""
    journey_ids = []
    for n in range(journeys):
        order = sample_order(new_order_id("PROM"), n)
        journey_ids.append((await stack.client.start_journey(order)).journey_id)
        if n == 0:
            await stack.client.record_event(
                order.order_id, pb.OrderEvent(event_id="ship-1", type=pb.EVENT_TYPE_SHIPPED)
            )
    with pytest.raises(InvalidRequestError):
        await stack.client.start_journey(pb.Order(order_id=new_order_id("BAD")))
    async with httpx.AsyncClient(base_url=stack.http_url) as http:
        assert (await http.get("/healthz")).status_code == 200

    def confirmed() -> int:
        """Journeys with their first email (the confirmation) in the sink."""
        mailed = {mail.message["X-Aftercare-Journey"] for mail in stack.sink.handler.received}
        return len(mailed & set(journey_ids))

    await eventually(
        lambda: asyncio.sleep(0, result=confirmed()), lambda n: n == journeys, seconds=30
    )


async def _value(prometheus: PrometheusServer, expr: str) -> float:
    """The single number ``expr`` gives (0 while it has no sample)."""
    result = await prometheus.query(expr)
    return float(result[0]["value"][1]) if result else 0.0


async def _until(prometheus: PrometheusServer, expr: str, seconds: float = 30) -> float:
    """Poll until ``expr`` has a positive value (a scrape or two after the fact)."""
    return await eventually(
        lambda: _value(prometheus, expr), lambda value: value > 0, seconds=seconds, interval=0.5
    )


async def test_every_process_is_scraped(prometheus: PrometheusServer) -> None:
    up = await eventually(
        prometheus.targets_up,
        lambda jobs: set(jobs) == set(JOBS) and all(jobs.values()),
        seconds=30,
        interval=0.5,
    )
    assert up == dict.fromkeys(JOBS, True)


async def test_the_journeys_emails_are_counted(prometheus: PrometheusServer, driven: int) -> None:
    sent = 'sum(aftercare_messages_total{channel="email", outcome="sent", job="aftercare-worker"})'
    await eventually(
        lambda: _value(prometheus, sent), lambda value: value >= driven, seconds=30, interval=0.5
    )


async def test_an_invalid_call_is_counted_by_its_code(
    prometheus: PrometheusServer, driven: int
) -> None:
    invalid = (
        'sum(aftercare_api_requests_total{code="INVALID_ARGUMENT", method="StartJourney",'
        ' job="aftercare-api"})'
    )
    assert await _until(prometheus, invalid) == 1
    ok = 'sum(aftercare_api_requests_total{code="OK", method="StartJourney"})'
    await eventually(
        lambda: _value(prometheus, ok), lambda value: value == driven, seconds=30, interval=0.5
    )


async def test_the_sdk_s_schedule_to_start_series_are_there(
    prometheus: PrometheusServer, driven: int
) -> None:
    for series in (
        catalogue.SDK_WORKFLOW_TASK_SCHEDULE_TO_START,
        catalogue.SDK_ACTIVITY_SCHEDULE_TO_START,
    ):
        assert await _until(prometheus, f'sum({series}_count{{job="aftercare-worker"}})') > 0
    for series in (catalogue.SDK_STICKY_CACHE_SIZE, catalogue.SDK_WORKER_TASK_SLOTS_AVAILABLE):
        assert await _until(prometheus, f'count({series}{{job="aftercare-worker"}})') > 0


async def test_every_dashboard_query_runs(prometheus: PrometheusServer, driven: int) -> None:
    queries = panel_queries(load_dashboard())
    assert queries

    async def panels_without_data() -> set[str]:
        """Every query runs (PromQLError otherwise); the panels it found empty."""
        empty: set[str] = set()
        for query in queries:
            result: list[dict[str, Any]] = await prometheus.query(
                concrete(query.expr, rate_interval=RATE_INTERVAL)
            )
            if not result:
                empty.add(query.panel)
        return empty

    # Each series needs two scrapes inside the window before a rate has a value, and
    # the parts' series appear at their first use: poll until the traffic's have.
    empty = await eventually(
        panels_without_data, lambda empty: not set(PANELS_WITH_DATA) & empty, seconds=60
    )
    assert empty <= {query.panel for query in queries} - set(PANELS_WITH_DATA)


async def test_every_alert_rule_expression_runs(prometheus: PrometheusServer, driven: int) -> None:
    expressions = rule_expressions()
    assert expressions
    for rule in expressions:
        # PromQLError, with the expression, if Prometheus refuses it.
        await prometheus.query(rule.expr)
    # Prometheus loaded the same rules itself, and none of them failed to evaluate.
    answer = await prometheus.http_get("/api/v1/rules")
    groups = answer["data"]["groups"]
    loaded = [rule for group in groups for rule in group["rules"]]
    assert {rule["name"] for rule in loaded} == {rule.name for rule in expressions}
    await eventually(
        lambda: prometheus.http_get("/api/v1/rules"),
        lambda body: all(
            rule.get("health") == "ok"
            for group in body["data"]["groups"]
            for rule in group["rules"]
        ),
        seconds=20,
        interval=0.5,
    )


async def test_the_screenshot_tool_draws_the_key_panels(
    stack: MetricsStack, prometheus: PrometheusServer, driven: int, tmp_path: Path
) -> None:
    """``make dashboard-screenshots`` against this Prometheus: one PNG per key panel,
    each drawn from data (the tool refuses a query without any)."""
    # Traffic of the last seconds, as the tool's rate window shows it: the module's
    # first journeys may be older than that by now on a busy machine.
    await drive(stack, 2)
    await eventually(
        lambda: prometheus.query(
            f'sum(rate(aftercare_messages_total{{outcome="sent"}}'
            f"[{dashboard_screenshots.RATE_INTERVAL}]))"
        ),
        bool,  # a series in the window, as the tool asks of each panel
        seconds=20,
        interval=0.5,
    )
    written = await dashboard_screenshots.render(prometheus.url, tmp_path)
    assert [png.name for png in written] == [
        f"dashboard-{panel.name}.png" for panel in dashboard_screenshots.KEY_PANELS
    ]
    for png in written:
        assert png_size(png) == dashboard_screenshots.WINDOW
