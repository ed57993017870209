"""``aftercare subscriptions add / list / remove`` through the real API: the secret is
printed once, a bad URL or event type is refused naming the field (exit 2), removing
an unknown subscription is NOT_FOUND (exit 1)."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator

import pytest
from temporalio.client import Client
from typer.testing import CliRunner

from engine.cli.app import app
from engine.devstack.mail_sink import MailSink
from tests.support.operations import OperationsStack, operations_stack

runner = CliRunner()


@pytest.fixture(scope="module")
async def stack(
    temporal_client: Client, mail_sink: MailSink, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[OperationsStack]:
    folder = tmp_path_factory.mktemp("subscriptions-cli")
    async with operations_stack(temporal_client, folder, mail_sink) as running:
        yield running


async def aftercare(stack: OperationsStack, *args: str) -> tuple[int, str]:
    """Run ``aftercare subscriptions ...`` configured by the environment only (in a
    thread: the command runs its own event loop)."""
    env: dict[str, str | None] = {
        name: None for name in os.environ if name.startswith("AFTERCARE_")
    }
    env.update(
        AFTERCARE_GRPC_PORT=str(stack.settings.grpc_port),
        AFTERCARE_STATE_DIR=str(stack.settings.state_dir),
        AFTERCARE_API_KEY=stack.api_key,
    )
    result = await asyncio.to_thread(runner.invoke, app, ["subscriptions", *args], env=env)
    return result.exit_code, result.output


async def test_add_list_remove(stack: OperationsStack) -> None:
    code, out = await aftercare(
        stack,
        "add",
        "https://crm.example.com/hooks",
        "--event",
        "detractor",
        "--event",
        "conversion",
    )
    assert code == 0, out
    # The API's log shares the output here: the command's own line.
    found = re.search(r"^subscription (sub_[0-9a-f]+)$", out, re.MULTILINE)
    assert found is not None, out
    subscription_id = found.group(1)
    assert "secret whsec_" in out

    code, out = await aftercare(stack, "list")
    assert code == 0, out
    assert f"{subscription_id}  https://crm.example.com/hooks  conversion,detractor" in out

    code, out = await aftercare(stack, "remove", subscription_id)
    assert code == 0, out
    assert f"{subscription_id}: removed" in out
    code, out = await aftercare(stack, "list")
    assert code == 0, out
    assert "no subscriptions" in out

    code, out = await aftercare(stack, "remove", subscription_id)
    assert code == 1
    assert "NOT_FOUND" in out


async def test_bad_input_is_refused_naming_the_field(stack: OperationsStack) -> None:
    code, out = await aftercare(
        stack, "add", "http://crm.example.com/hooks", "--event", "message.opened"
    )
    assert code == 2
    assert "url: must be https" in out
    assert "event_types[0]: unknown event type 'message.opened'" in out
