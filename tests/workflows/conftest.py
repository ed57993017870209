"""Fixtures for journeys in virtual time."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from engine.devstack.mail_sink import MailSink
from tests.support.virtual_time import VirtualJourneys, virtual_journeys


@pytest.fixture(scope="module")
async def journeys(
    mail_sink: MailSink, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[VirtualJourneys]:
    async with virtual_journeys(tmp_path_factory.mktemp("virtual"), mail_sink) as running:
        yield running
