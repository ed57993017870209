"""`aftercare consume` without a broker stops at once, naming the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.platform.secret_values import MissingSecret
from engine.platform.settings import Settings
from engine.processes.consumer import run_consumer
from engine.processes.dev_stack import with_dev_secrets
from tests.support.net import free_port


async def test_without_a_broker_url_the_consumer_names_the_setting(tmp_path: Path) -> None:
    settings = with_dev_secrets(
        Settings(
            _env_file=None,
            state_dir=tmp_path,
            # Nothing listens there: a consumer that got past its settings would wait.
            temporal_address=f"127.0.0.1:{free_port()}",
        )
    )
    with pytest.raises(MissingSecret, match="AFTERCARE_BROKER_URL"):
        await run_consumer(settings)
