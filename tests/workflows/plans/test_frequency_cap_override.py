"""The deployment's frequency caps (AFTERCARE_FREQUENCY_CAPS) over the plans' own:
read and checked as a setting, applied by the choose_plan activity, and pinned by
a journey started through the real worker on the dev server."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from pydantic import ValidationError
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment

from activities.choose_plan import PlanActivities
from activities.email.rendering import TEMPLATE_NAMES
from engine.devstack.mail_sink import MailSink
from engine.journeys.directory import JourneyDirectory
from engine.journeys.plans import deployment_plans
from engine.platform.database.migrate import upgrade_database
from engine.platform.settings import Settings
from engine.processes.dev_stack import with_dev_secrets
from engine.processes.worker import journey_worker
from tests.support.databases import sqlite_url
from tests.support.orders import COFFEE, domain_order
from tests.support.waiting import eventually
from workflows.contracts import ChoosePlanInput
from workflows.order_journey import OrderJourney
from workflows.plans.catalogue import content_hash, load_catalogue, with_frequency_caps
from workflows.plans.model import FrequencyCap

SETTING = "AFTERCARE_FREQUENCY_CAPS"
# Tighter marketing caps, feedback capped too, relationship left as the plan says.
OVERRIDE = {"marketing": [{"max": 1, "days": 7}], "feedback": [{"max": 2, "days": 30}]}


def settings_from_env(monkeypatch: pytest.MonkeyPatch, value: str, **more: object) -> Settings:
    monkeypatch.setenv(SETTING, value)
    return Settings(_env_file=None, **more)  # type: ignore[arg-type]


def test_unset_or_empty_leaves_the_plans_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SETTING, raising=False)
    assert Settings(_env_file=None).frequency_caps is None
    assert settings_from_env(monkeypatch, "  ").frequency_caps is None


def test_the_setting_is_read_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_from_env(monkeypatch, json.dumps({**OVERRIDE, "relationship": []}))
    assert settings.frequency_caps == {
        "marketing": (FrequencyCap(max=1, days=7),),
        "feedback": (FrequencyCap(max=2, days=30),),
        "relationship": (),
    }


@pytest.mark.parametrize(
    ("value", "path", "problem"),
    [
        ('{"marketing": [{"max": 0, "days": 3}]}', "marketing[0].max", "greater than or equal"),
        ('{"marketing": [{"max": 1, "days": 400}]}', "marketing[0].days", "less than or equal"),
        ('{"marketing": [{"max": "1", "days": 3}]}', "marketing[0].max", "valid integer"),
        ('{"marketing": [{"max": 1, "days": 3, "per": "week"}]}', "marketing[0].per", "unknown"),
        ('{"marketing": [{"max": 1}]}', "marketing[0].days", "required"),
        ('{"transactional": []}', "transactional", "'marketing'"),
        ('{"marketing": {"max": 1, "days": 3}}', "marketing", "valid"),
        ('[{"max": 1, "days": 3}]', "", "object"),
        ("marketing=1/3d", "", "Invalid JSON"),
    ],
)
def test_a_bad_value_is_refused_naming_the_setting_and_the_place(
    monkeypatch: pytest.MonkeyPatch, value: str, path: str, problem: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        settings_from_env(monkeypatch, value)
    message = str(refused.value)
    assert f"{SETTING}: {path}: " in message if path else f"{SETTING}: " in message
    assert problem in message
    assert '{"marketing": [{"max": 1, "days": 3}]}' in message  # how to write it


async def test_choose_plan_pins_the_override_over_the_plans_caps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = settings_from_env(monkeypatch, json.dumps({**OVERRIDE, "relationship": []}))
    shipped = load_catalogue(known_templates=TEMPLATE_NAMES)
    activities = PlanActivities(deployment_plans(settings))
    environment = ActivityEnvironment()

    for order in (domain_order(), domain_order(items=[COFFEE])):
        pinned = await environment.run(activities.choose_plan, ChoosePlanInput(order=order))
        original = shipped[pinned.plan.id]
        assert pinned.plan.frequency_caps == {
            "marketing": (FrequencyCap(max=1, days=7),),
            "feedback": (FrequencyCap(max=2, days=30),),
        }
        # Only the caps changed; the hash is of what the journey will run.
        assert pinned.plan.steps == original.plan.steps
        assert pinned.content_hash == content_hash(pinned.plan)
        assert pinned.content_hash != original.content_hash
        assert pinned.source == original.source

    # Without the setting the shipped caps are pinned, hash and all.
    plain = await environment.run(
        PlanActivities(deployment_plans(Settings.model_construct())).choose_plan,
        ChoosePlanInput(order=domain_order()),
    )
    assert plain == shipped[plain.plan.id]
    assert plain.plan.frequency_caps["marketing"] == (
        FrequencyCap(max=1, days=3),
        FrequencyCap(max=3, days=30),
    )


async def test_a_journey_started_through_the_worker_pins_the_override(
    monkeypatch: pytest.MonkeyPatch,
    temporal_client: Client,
    mail_sink: MailSink,
    tmp_path: Path,
) -> None:
    database = sqlite_url(tmp_path)
    upgrade_database(database)
    settings = settings_from_env(
        monkeypatch,
        json.dumps(OVERRIDE),
        state_dir=tmp_path,
        task_queue=f"caps-{uuid.uuid4().hex[:8]}",
        database_url=database,
        smtp_port=mail_sink.port,
    )
    settings = with_dev_secrets(settings)  # kept under the state dir, as `aftercare run` does
    directory = JourneyDirectory(temporal_client, settings.task_queue)
    shipped = load_catalogue(known_templates=TEMPLATE_NAMES)["default"]
    order = domain_order(customer_id=f"cus-caps-{uuid.uuid4().hex[:8]}")

    async with journey_worker(temporal_client, settings) as worker, worker:
        started = await directory.start(order)
        handle = temporal_client.get_workflow_handle_for(OrderJourney.run, started.journey_id)
        state = await eventually(
            lambda: handle.query(OrderJourney.state), lambda s: bool(s.plan_hash)
        )
        await handle.cancel()

    # The journey pinned the default plan with the deployment's caps in it.
    expected = with_frequency_caps(shipped, settings.frequency_caps)
    assert expected.plan.frequency_caps["marketing"] == (FrequencyCap(max=1, days=7),)
    assert (state.plan_id, state.plan_version) == ("default", shipped.plan.version)
    assert state.plan_hash == expected.content_hash
    assert state.plan_hash != shipped.content_hash
