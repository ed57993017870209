"""The client library against the fake API served in the test process."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from clients import AftercareClient
from tests.support.fake_api import FakeServer, serve_fake_api

API_KEY = "ak_test_0123456789abcdef"


@pytest.fixture
async def fake() -> AsyncIterator[FakeServer]:
    async with serve_fake_api() as served:
        yield served


@pytest.fixture
async def client(fake: FakeServer) -> AsyncIterator[AftercareClient]:
    async with AftercareClient(fake.target, api_key=API_KEY) as aftercare:
        yield aftercare
