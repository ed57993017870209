"""A deployment's processes never make keys: `aftercare api`, `worker`, `http` and
`codec` refuse to start without the shared secrets, naming each missing variable and
how to make one. Only the dev stack makes them, under its state dir."""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from engine.platform.codec.keys import KEYS_FILE_NAME, generate_keyring, parse_keyring
from engine.platform.codec.runtime import (
    TOKEN_FILE_NAME,
    codec_token_for,
    erasure_marks_for,
    keyring_for,
    require_secrets,
)
from engine.platform.links.secret import SECRET_FILE_NAME, secret_key_for
from engine.platform.secret_values import MissingSecret
from engine.platform.settings import Settings
from engine.processes.dev_stack import with_dev_secrets
from tests.support.net import free_port

AFTERCARE = Path(sys.executable).parent / "aftercare"

SECRET_KEY = "AFTERCARE_SECRET_KEY"
CODEC_KEYS = "AFTERCARE_CODEC_KEYS"
CODEC_TOKEN = "AFTERCARE_CODEC_TOKEN"


async def start(command: str, state_dir: Path, **variables: str) -> tuple[int | None, str]:
    """``aftercare COMMAND`` with nothing but ``variables`` set; its exit code (None if it
    was still running after 60 s, then stopped) and its stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AFTERCARE_")}
    env.update(
        AFTERCARE_STATE_DIR=str(state_dir),
        # Nothing listens there: a process that got past its secrets would wait.
        AFTERCARE_TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}",
        AFTERCARE_GRPC_PORT=str(free_port()),
        AFTERCARE_HTTP_PORT=str(free_port()),
        AFTERCARE_CODEC_PORT=str(free_port()),
        AFTERCARE_DATABASE_URL=f"sqlite+aiosqlite:///{state_dir.parent / 'unused.db'}",
        **variables,
    )
    process = await asyncio.create_subprocess_exec(
        str(AFTERCARE),
        command,
        env=env,
        cwd=state_dir.parent,  # no .env of the checkout
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, err = await asyncio.wait_for(process.communicate(), 60)
    except TimeoutError:
        process.terminate()
        _, err = await process.communicate()
        return None, err.decode(errors="replace")
    return process.returncode, err.decode(errors="replace")


@pytest.mark.parametrize(
    ("command", "needed"),
    [
        ("api", [SECRET_KEY, CODEC_KEYS]),
        ("worker", [SECRET_KEY, CODEC_KEYS]),
        ("http", [SECRET_KEY, CODEC_KEYS]),
        ("codec", [SECRET_KEY, CODEC_KEYS, CODEC_TOKEN]),
    ],
)
async def test_a_deployment_process_without_its_secrets_stops_at_start_and_makes_none(
    command: str, needed: list[str], tmp_path: Path
) -> None:
    state_dir = tmp_path / "state"
    code, err = await start(command, state_dir)
    assert code == 2, err
    for name in needed:
        assert f"{name} is not set" in err
        assert f"{name}_FILE" in err
    assert "aftercare secrets init" in err
    assert "Traceback" not in err
    # Nothing was made in its stead: no keys, no token, no folder even.
    assert not state_dir.exists()


async def test_one_missing_secret_is_named_alone(tmp_path: Path) -> None:
    code, err = await start(
        "codec",
        tmp_path / "state",
        AFTERCARE_SECRET_KEY="k7Qz" * 10,
        AFTERCARE_CODEC_KEYS=generate_keyring().to_config(),
    )
    assert code == 2, err
    assert f"{CODEC_TOKEN} is not set" in err
    assert SECRET_KEY not in err
    assert CODEC_KEYS not in err


@pytest.mark.parametrize("command", ["worker", "api"])
async def test_a_placeholder_secret_stops_the_process_naming_the_setting(
    command: str, tmp_path: Path
) -> None:
    code, err = await start(
        command,
        tmp_path / "state",
        AFTERCARE_SECRET_KEY="change-me-to-a-long-random-value",
        AFTERCARE_CODEC_KEYS=generate_keyring().to_config(),
    )
    assert code == 2, err
    assert "configuration error" in err
    assert "AFTERCARE_SECRET_KEY is a placeholder, not a secret" in err
    assert "change-me-to-a-long-random-value" not in err
    assert "Traceback" not in err


def test_the_functions_every_part_uses_require_the_secrets(tmp_path: Path) -> None:
    bare = Settings(_env_file=None, state_dir=tmp_path)
    with pytest.raises(MissingSecret, match=f"^{SECRET_KEY} is not set"):
        secret_key_for(bare)
    with pytest.raises(MissingSecret, match=f"^{SECRET_KEY} is not set"):
        erasure_marks_for(bare)
    with pytest.raises(MissingSecret, match=f"^{CODEC_KEYS} is not set"):
        keyring_for(bare)
    with pytest.raises(MissingSecret, match=f"^{CODEC_TOKEN} is not set"):
        codec_token_for(bare)
    with pytest.raises(MissingSecret) as both:
        require_secrets(bare)
    assert SECRET_KEY in str(both.value)
    assert CODEC_KEYS in str(both.value)
    assert CODEC_TOKEN not in str(both.value)
    assert list(tmp_path.iterdir()) == []  # nothing made

    keyring = generate_keyring()
    configured = Settings(
        _env_file=None,
        state_dir=tmp_path,
        secret_key="k7Qz" * 10,
        codec_keys=keyring.to_config(),
        codec_token="t0kn" * 10,
    )
    require_secrets(configured, codec_token=True)
    assert secret_key_for(configured) == "k7Qz" * 10
    assert keyring_for(configured) == keyring
    assert codec_token_for(configured) == "t0kn" * 10
    assert list(tmp_path.iterdir()) == []


def test_the_dev_stack_makes_its_secrets_once_under_its_state_dir(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    first = with_dev_secrets(Settings(_env_file=None, state_dir=state_dir))
    require_secrets(first, codec_token=True)
    names = sorted(path.name for path in state_dir.iterdir())
    assert names == sorted([SECRET_FILE_NAME, KEYS_FILE_NAME, TOKEN_FILE_NAME])
    for path in state_dir.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    # A restart finds the same ones: journeys and links stay readable.
    again = with_dev_secrets(Settings(_env_file=None, state_dir=state_dir))
    for field in ("secret_key", "codec_keys", "codec_token"):
        made, kept = getattr(first, field), getattr(again, field)
        assert isinstance(made, SecretStr)
        assert isinstance(kept, SecretStr)
        assert made.get_secret_value() == kept.get_secret_value(), field
    # Another state dir, other secrets.
    other = with_dev_secrets(Settings(_env_file=None, state_dir=tmp_path / "other"))
    assert secret_key_for(other) != secret_key_for(first)
    assert keyring_for(other) != keyring_for(first)


def test_the_dev_stack_uses_configured_secrets_and_makes_only_the_rest(tmp_path: Path) -> None:
    keyring = generate_keyring()
    settings = with_dev_secrets(
        Settings(
            _env_file=None,
            state_dir=tmp_path,
            secret_key="k7Qz" * 10,
            codec_keys=keyring.to_config(),
        )
    )
    assert secret_key_for(settings) == "k7Qz" * 10
    assert parse_keyring(keyring_for(settings).to_config()) == keyring
    assert [path.name for path in tmp_path.iterdir()] == [TOKEN_FILE_NAME]


async def test_a_temporal_setting_that_cannot_work_stops_the_worker_naming_it(
    tmp_path: Path,
) -> None:
    missing_ca = tmp_path / "missing-ca.pem"
    code, err = await start(
        "worker",
        tmp_path / "state",
        AFTERCARE_SECRET_KEY="k7Qz" * 10,
        AFTERCARE_CODEC_KEYS=generate_keyring().to_config(),
        AFTERCARE_TEMPORAL_TLS_CA_FILE=str(missing_ca),
    )
    # It stops at once with the setting's name, not after the connection wait.
    assert code == 2, err
    assert "AFTERCARE_TEMPORAL_TLS_CA_FILE" in err
    assert str(missing_ca) in err
    assert "Traceback" not in err
