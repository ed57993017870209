"""``aftercare keys`` on SQLite and PostgreSQL, and how the journey commands find
their key (``--api-key``, ``AFTERCARE_API_KEY``, the dev stack's key file)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.access.api_keys import parse_key
from engine.access.scopes import Scope
from engine.cli.app import app
from engine.devstack.dev_key import DEV_KEY_FILE_NAME
from tests.conftest import Service

AFTERCARE = Path(sys.executable).parent / "aftercare"

runner = CliRunner()


def keys(database_url: str, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["keys", *args], env={"AFTERCARE_DATABASE_URL": database_url})
    return result.exit_code, result.stdout, result.stderr


def test_create_prints_the_key_once_list_never_shows_it(database_url: str) -> None:
    code, out, err = keys(
        database_url,
        "create",
        "--name",
        "orders",
        "--scope",
        "events:write",
        "--scope",
        "journeys:read",
    )
    assert code == 0, err
    token = out.strip()
    key_id, secret = parse_key(token)  # stdout is the key alone
    assert "cannot be shown again" in err
    assert "events:write,journeys:read" in err

    code, out, err = keys(database_url, "list")
    assert code == 0, err
    assert key_id in out
    assert "'orders'" in out
    assert "active" in out
    assert secret not in out + err


def test_revoke_marks_the_key_and_list_can_leave_it_out(database_url: str) -> None:
    _, out, _ = keys(database_url, "create", "--name", "old", "--scope", "journeys:admin")
    key_id, _ = parse_key(out.strip())
    _, out, _ = keys(database_url, "create", "--name", "new", "--scope", "journeys:admin")
    other_id, _ = parse_key(out.strip())

    code, out, err = keys(database_url, "revoke", key_id)
    assert code == 0, err
    assert key_id in out
    assert "revoked" in out

    _, every, _ = keys(database_url, "list")
    _, active, _ = keys(database_url, "list", "--active")
    assert key_id in every
    assert other_id in every
    assert key_id not in active
    assert other_id in active


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["create", "--name", "svc", "--scope", "journeys:write"], "scopes"),
        (["create", "--name", "svc"], "scopes"),
        (["create", "--name", " ", "--scope", "journeys:read"], "name"),
        (["revoke", "not-an-id"], "id"),
    ],
)
def test_bad_input_names_the_field_and_creates_nothing(
    database_url: str, args: list[str], field: str
) -> None:
    code, out, err = keys(database_url, *args)
    assert code == 2
    assert err.startswith(f"{field}: ")
    assert out == ""
    _, listed, nothing = keys(database_url, "list")
    assert listed == ""
    assert "no API keys" in nothing


def test_revoking_an_unknown_key(database_url: str) -> None:
    code, _, err = keys(database_url, "revoke", "0123456789abcdef")
    assert code == 1
    assert "no API key with id 0123456789abcdef" in err


def test_the_scope_help_lists_every_scope() -> None:
    result = runner.invoke(app, ["keys", "create", "--help"])
    for scope in Scope:
        assert scope.value in result.stdout


async def journey_list(env: dict[str, str], *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        str(AFTERCARE),
        "journey",
        "list",
        "--customer",
        "nobody-at-all",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 120)
    return process.returncode or 0, out.decode(errors="replace")


async def test_journey_commands_take_the_key_from_option_env_or_dev_file(
    service: Service, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AFTERCARE_")}
    env.update(
        AFTERCARE_GRPC_PORT=str(service.settings.grpc_port),
        AFTERCARE_STATE_DIR=str(tmp_path),
    )

    code, out = await journey_list(env)
    assert code == 1
    assert "UNAUTHENTICATED: missing API key" in out

    code, out = await journey_list(env, "--api-key", "ak_0123456789abcdef_" + "A" * 43)
    assert code == 1
    assert "UNAUTHENTICATED: unknown API key" in out

    code, out = await journey_list(env, "--api-key", service.api_key)
    assert code == 0, out

    code, out = await journey_list(dict(env, AFTERCARE_API_KEY=service.api_key))
    assert code == 0, out

    (tmp_path / DEV_KEY_FILE_NAME).write_text(service.api_key + "\n")
    code, out = await journey_list(env)
    assert code == 0, out
