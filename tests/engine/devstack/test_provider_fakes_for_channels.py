"""The Twilio fake's Content API fields and WhatsApp window, and the FCM fake's
checks, spoken to in-process (ASGI) as the providers document them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from engine.devstack.fcm_fake import FcmFake
from engine.devstack.twilio_fake import TwilioFake, build_twilio_fake, new_account_sid

TOKEN = "fake-channels-auth-token"
CUSTOMER = "+4915112345678"
SHOP = "whatsapp:+15005550006"
SID = "HX" + "0123456789abcdef" * 2


@pytest.fixture
async def twilio() -> AsyncIterator[tuple[TwilioFake, httpx.AsyncClient]]:
    fake = build_twilio_fake(new_account_sid(), TOKEN, whatsapp_windows=True)
    transport = httpx.ASGITransport(app=fake.app)
    async with httpx.AsyncClient(
        transport=transport, base_url="https://api.twilio.test", auth=(fake.account_sid, TOKEN)
    ) as client:
        yield fake, client
    await fake.aclose()


async def create(
    twilio: tuple[TwilioFake, httpx.AsyncClient], **fields: str
) -> tuple[int, dict[str, object]]:
    fake, client = twilio
    answer = await client.post(
        f"/2010-04-01/Accounts/{fake.account_sid}/Messages.json",
        data={"To": f"whatsapp:{CUSTOMER}", "From": SHOP, **fields},
    )
    body: dict[str, object] = answer.json()
    return answer.status_code, body


async def test_a_template_goes_outside_the_window_and_free_form_text_does_not(
    twilio: tuple[TwilioFake, httpx.AsyncClient],
) -> None:
    variables = json.dumps({"1": "Jane", "2": "A-1001"})
    status, body = await create(twilio, ContentSid=SID, ContentVariables=variables)
    assert status == 201, body
    status, body = await create(twilio, Body="Hello")
    assert (status, body["code"]) == (400, 63016)
    fake = twilio[0]
    # The customer wrote: free-form text goes for 24 hours, then no more.
    fake.customer_wrote(f"whatsapp:{CUSTOMER}")
    assert (await create(twilio, Body="Hello"))[0] == 201
    fake.customer_wrote(CUSTOMER, at=datetime.now(UTC) - timedelta(hours=25))
    assert (await create(twilio, Body="Hello"))[1]["code"] == 63016
    assert [m.params.get("ContentSid") for m in fake.messages] == [[SID], None]


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"ContentVariables": '{"1": "x"}', "Body": "x"}, 21654),
        ({"ContentSid": "HX123"}, 21655),
        ({"ContentSid": SID, "ContentVariables": "not json"}, 21656),
        ({"ContentSid": SID, "ContentVariables": '{"1": ""}'}, 21656),
        ({"ContentSid": SID, "ContentVariables": '["a"]'}, 21656),
    ],
)
async def test_content_fields_are_checked_as_twilio_documents(
    twilio: tuple[TwilioFake, httpx.AsyncClient], fields: dict[str, str], code: int
) -> None:
    status, body = await create(twilio, **fields)
    assert (status, body["code"]) == (400, code)
    assert twilio[0].messages == []


@pytest.fixture
async def fcm() -> AsyncIterator[tuple[FcmFake, httpx.AsyncClient]]:
    fake = FcmFake()
    transport = httpx.ASGITransport(app=fake.app)
    async with httpx.AsyncClient(transport=transport, base_url="https://fcm.test") as client:
        yield fake, client


async def test_fcm_refuses_a_call_without_an_access_token_it_granted(
    fcm: tuple[FcmFake, httpx.AsyncClient],
) -> None:
    fake, client = fcm
    answer = await client.post(
        f"/v1/projects/{fake.project_id}/messages:send",
        json={"message": {"token": "a" * 30, "notification": {"title": "t", "body": "b"}}},
        headers={"Authorization": "Bearer made-up"},
    )
    assert answer.status_code == 401
    assert answer.json()["error"]["status"] == "UNAUTHENTICATED"


async def test_fcm_refuses_a_grant_that_is_not_the_jwt_bearer_one(
    fcm: tuple[FcmFake, httpx.AsyncClient],
) -> None:
    _, client = fcm
    answer = await client.post("/token", data={"grant_type": "client_credentials"})
    assert answer.status_code == 400
    assert answer.json()["error"] == "unsupported_grant_type"
