"""GetPlanReport through the real API server (auth interceptor, time bound, the
database), called with the Python client: the figures written into the ledger
come back, and bad calls end with the documented status codes."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from temporalio.client import Client
from typer.testing import CliRunner

from clients import (
    AftercareClient,
    AuthenticationError,
    InvalidRequestError,
    PermissionDeniedError,
    PlanNotFoundError,
)
from engine.access.scopes import ALL_SCOPES, Scope
from engine.cli.app import app
from engine.insights.report_export import report_from_json
from engine.insights.report_proto import report_from_message
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.database.migrate import upgrade_database
from engine.platform.settings import Settings
from engine.processes.api import serving_api
from engine.processes.dev_stack import with_dev_secrets
from tests.support.api_keys import create_key
from tests.support.databases import sqlite_url
from tests.support.net import free_port
from tools.report_traffic import ExperimentTraffic, StepTraffic, Traffic, write_traffic

NOW = datetime.now(UTC).replace(microsecond=0)


@dataclass
class ReportApi:
    settings: Settings
    reader: str  # a key with reports:read only
    others: str  # every scope but reports:read

    @property
    def target(self) -> str:
        return self.settings.grpc_target


@pytest.fixture(scope="module")
async def report_api(
    temporal_client: Client, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ReportApi]:
    state_dir = tmp_path_factory.mktemp("reports")
    database_url = sqlite_url(state_dir)
    upgrade_database(database_url)
    engine = create_engine(database_url)
    await write_traffic(
        create_session_factory(engine),
        Traffic(
            plan_label="default@v1",
            now=NOW,
            steps=[StepTraffic("thank_you", "email", messages=60)],
            experiments=[
                ExperimentTraffic(
                    "review-subject",
                    "review_request",
                    "email",
                    {"control": (1.0, 0.05), "holdout": (0.2, 0.03)},
                    customers=120,
                )
            ],
        ),
    )
    await engine.dispose()
    settings = with_dev_secrets(
        Settings(
            _env_file=None,
            state_dir=state_dir,
            temporal_address="unused:0",
            task_queue=f"reports-{uuid.uuid4().hex[:8]}",
            database_url=database_url,
            grpc_port=free_port(),
            api_key_cache_seconds=0,
        )
    )
    reader = await create_key(database_url, [Scope.REPORTS_READ.value])
    others = await create_key(database_url, sorted(ALL_SCOPES - {Scope.REPORTS_READ}))
    async with serving_api(temporal_client, settings, grace_seconds=1):
        yield ReportApi(settings, reader, others)


async def test_the_report_comes_back_with_the_ledgers_figures(report_api: ReportApi) -> None:
    async with AftercareClient(report_api.target, api_key=report_api.reader) as client:
        reply = await client.get_plan_report(
            "default", since=NOW - timedelta(days=31), until=NOW + timedelta(seconds=1)
        )
    report = report_from_message(reply)
    steps = {(row.step, row.channel): row for row in report.steps}
    assert steps[("thank_you", "email")].scheduled == 60
    assert steps[("review_request", "email")].scheduled == 120
    (experiment,) = report.experiments
    assert experiment.baseline == "holdout"
    assert sum(arm.exposed for arm in experiment.variants) == 120
    assert report.alpha == 0.05
    assert "agresti-caffo" in report.statistics_method
    assert len(report.days) == 32


async def test_the_default_period_is_the_last_30_days(report_api: ReportApi) -> None:
    async with AftercareClient(report_api.target, api_key=report_api.reader) as client:
        reply = await client.get_plan_report("default")
    report = report_from_message(reply)
    assert report.period.until - report.period.since == timedelta(days=30)
    assert report.totals().scheduled > 0


async def test_a_call_without_a_key_is_unauthenticated(report_api: ReportApi) -> None:
    async with AftercareClient(report_api.target) as client:
        with pytest.raises(AuthenticationError):
            await client.get_plan_report("default")


async def test_a_key_without_reports_read_is_denied(report_api: ReportApi) -> None:
    async with AftercareClient(report_api.target, api_key=report_api.others) as client:
        with pytest.raises(PermissionDeniedError, match="reports:read"):
            await client.get_plan_report("default")


@pytest.mark.parametrize(
    ("plan", "since", "until", "field"),
    [
        ("", None, None, "plan"),
        ("default@v1", None, None, "plan"),
        ("default", NOW, NOW - timedelta(days=1), "since"),
        ("default", NOW - timedelta(days=400), NOW, "since"),
    ],
)
async def test_a_bad_plan_or_period_is_invalid_naming_the_field(
    report_api: ReportApi,
    plan: str,
    since: datetime | None,
    until: datetime | None,
    field: str,
) -> None:
    async with AftercareClient(report_api.target, api_key=report_api.reader) as client:
        with pytest.raises(InvalidRequestError) as refused:
            await client.get_plan_report(plan, since=since, until=until)
    assert list(refused.value.fields) == [field]


async def test_an_unknown_plan_is_not_found(report_api: ReportApi) -> None:
    async with AftercareClient(report_api.target, api_key=report_api.reader) as client:
        with pytest.raises(PlanNotFoundError, match="no-such-plan"):
            await client.get_plan_report("no-such-plan")


async def test_a_plan_of_the_deployment_without_messages_has_an_empty_report(
    report_api: ReportApi,
) -> None:
    async with AftercareClient(report_api.target, api_key=report_api.reader) as client:
        reply = await client.get_plan_report("consumables")
    assert reply.plan == "consumables"
    assert list(reply.steps) == []


async def aftercare_report(
    report_api: ReportApi, *args: str, key: str | None = None
) -> tuple[int, str]:
    """``aftercare report ...`` as a person runs it, configured by the environment only
    (in a thread: the command runs its own event loop)."""
    env: dict[str, str | None] = {
        name: None for name in os.environ if name.startswith("AFTERCARE_")
    }
    env.update(
        AFTERCARE_GRPC_PORT=str(report_api.settings.grpc_port),
        AFTERCARE_STATE_DIR=str(report_api.settings.state_dir),
        AFTERCARE_API_KEY=key or report_api.reader,
    )
    result = await asyncio.to_thread(CliRunner().invoke, app, ["report", *args], env=env)
    return result.exit_code, result.stdout if result.exit_code == 0 else result.output


async def test_the_command_prints_a_table(report_api: ReportApi) -> None:
    code, out = await aftercare_report(report_api, "--plan", "default", "--since", "31d")
    assert code == 0, out
    assert out.startswith("plan default, ")
    assert "thank_you" in out
    assert "experiment review-subject on review_request" in out
    assert "baseline" in out
    assert "agresti-caffo" in out
    assert "privacy proxies" in out


async def test_the_command_writes_csv_and_json(report_api: ReportApi, tmp_path: Path) -> None:
    code, out = await aftercare_report(
        report_api, "--since", "31d", "--format", "csv", "--table", "experiments"
    )
    assert code == 0, out
    arms = list(csv.DictReader(io.StringIO(out)))
    assert {arm["variant"] for arm in arms} == {"control", "holdout"}
    target = tmp_path / "report.json"
    code, out = await aftercare_report(
        report_api, "--since", "31d", "--format", "json", "--output", str(target)
    )
    assert code == 0, out
    report = report_from_json(target.read_text())
    assert report.plan == "default"
    assert json.loads(target.read_text())["steps"]


async def test_the_command_names_a_bad_option_or_refusal(report_api: ReportApi) -> None:
    code, out = await aftercare_report(report_api, "--since", "yesterday")
    assert code == 2
    assert "--since:" in out
    code, out = await aftercare_report(report_api, "--plan", "no-such-plan")
    assert code == 1
    assert "NOT_FOUND" in out
    code, out = await aftercare_report(report_api, key=report_api.others)
    assert code == 1
    assert "PERMISSION_DENIED" in out


@pytest.mark.parametrize(
    "plan",
    [
        "x" * 10_000,
        "default\x00",
        "default' OR '1'='1",
        "dé faut",
        "\u202edefault",
        "%",
    ],
)
async def test_hostile_plan_ids_are_invalid(report_api: ReportApi, plan: str) -> None:
    async with AftercareClient(report_api.target, api_key=report_api.reader) as client:
        with pytest.raises(InvalidRequestError) as refused:
            await client.get_plan_report(plan)
    assert list(refused.value.fields) == ["plan"]


async def test_like_wildcards_in_a_plan_id_match_nothing_else(report_api: ReportApi) -> None:
    # "_" is a valid id character and SQL LIKE's any-character: it must not find "default".
    async with AftercareClient(report_api.target, api_key=report_api.reader) as client:
        with pytest.raises(PlanNotFoundError):
            await client.get_plan_report("defaul_")


async def test_extreme_timestamps_are_answered(report_api: ReportApi) -> None:
    async with AftercareClient(report_api.target, api_key=report_api.reader) as client:
        far = await client.get_plan_report(
            "default",
            since=datetime(9999, 12, 1, tzinfo=UTC),
            until=datetime(9999, 12, 31, tzinfo=UTC),
        )
        early = await client.get_plan_report(
            "default",
            since=datetime(1970, 1, 1, tzinfo=UTC),
            until=datetime(1970, 1, 2, tzinfo=UTC),
        )
    assert list(far.steps) == []
    assert len(far.days) == 30
    assert list(early.steps) == []
