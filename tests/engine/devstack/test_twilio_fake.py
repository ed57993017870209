"""The local Twilio fake, held to Twilio's own published description of the Messages API.

``tests/fixtures/twilio/messages_v2010.openapi.json`` is the reference:
the fake accepts exactly the documented create fields and answers with documented Message
resources. The official SDK is the client, so what works here works against Twilio's shapes.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from twilio.http.async_http_client import AsyncTwilioHttpClient  # type: ignore[import-untyped]
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]
from twilio.rest import Client  # type: ignore[import-untyped]

from engine.devstack.twilio_fake import (
    CREATE_MESSAGE_FIELDS,
    RecordedRequest,
    TwilioFake,
    build_twilio_fake,
    new_account_sid,
    serve_twilio_fake,
)
from engine.platform.http_server import HttpServer, serve_http
from tests.support.net import free_port

REPO_ROOT = Path(__file__).resolve().parents[3]
# A copy of Twilio's published description (MIT, see LICENSE-twilio-oai beside it),
# kept in the repository so a clone anywhere tests against it.
SPEC_PATH = REPO_ROOT / "tests" / "fixtures" / "twilio" / "messages_v2010.openapi.json"
CREATE_PATH = "/2010-04-01/Accounts/{AccountSid}/Messages.json"
FETCH_PATH = "/2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json"
MESSAGE_SCHEMA = "#/components/schemas/api.v2010.account.message"
ERROR_KEYS = {"code", "message", "more_info", "status"}
TOKEN = "fake-auth-token"
SENDER = "+15005550006"
CUSTOMER = "+4915112345678"

# The SDK's own aiohttp client still uses aiohttp's deprecated BasicAuth; not ours to fix.
pytestmark = pytest.mark.filterwarnings(
    "ignore:BasicAuth is deprecated:DeprecationWarning",
    "ignore:The 'auth' parameter is deprecated:DeprecationWarning",
)


# -- the published description ---------------------------------------------------------------


def load_spec() -> dict[str, Any]:
    """The OpenAPI document; a missing file is a failure, never a skip."""
    if not SPEC_PATH.is_file():
        pytest.fail(f"Twilio's OpenAPI description is missing: {SPEC_PATH.resolve()}")
    spec: dict[str, Any] = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
    return spec


def create_request_schema(spec: Mapping[str, Any]) -> dict[str, Any]:
    body = spec["paths"][CREATE_PATH]["post"]["requestBody"]
    schema: dict[str, Any] = body["content"]["application/x-www-form-urlencoded"]["schema"]
    return schema


def documented_create_fields(spec: Mapping[str, Any]) -> set[str]:
    return set(create_request_schema(spec)["properties"])


def _resolve(spec: Mapping[str, Any], schema: Mapping[str, Any]) -> Mapping[str, Any]:
    while "$ref" in schema:
        ref = schema["$ref"]
        assert ref.startswith("#/"), ref
        node: Any = spec
        for part in ref[2:].split("/"):
            node = node[part]
        schema = node
    return schema


_RFC2822 = re.compile(r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}")
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


def schema_problems(
    spec: Mapping[str, Any], schema: Mapping[str, Any], value: Any, where: str
) -> list[str]:
    """What is wrong with ``value`` under an OpenAPI 3.0 schema (the subset Twilio uses)."""
    schema = _resolve(spec, schema)
    if value is None:
        return [] if schema.get("nullable") else [f"{where}: null is not allowed"]
    kind = schema.get("type")
    if kind is not None:
        allowed = _JSON_TYPES[kind]
        # JSON true/false must not pass as integers.
        if not isinstance(value, allowed) or (isinstance(value, bool) and kind != "boolean"):
            return [f"{where}: expected {kind}, got {type(value).__name__} {value!r}"]
    problems: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            problems.append(f"{where}: shorter than {schema['minLength']}")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            problems.append(f"{where}: longer than {schema['maxLength']}")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            problems.append(f"{where}: {value!r} does not match {schema['pattern']}")
        fmt = schema.get("format")
        if fmt == "date-time-rfc-2822":
            if not _RFC2822.fullmatch(value):
                problems.append(f"{where}: {value!r} is not an RFC 2822 date")
            else:
                parsedate_to_datetime(value)
        elif fmt == "currency" and not re.fullmatch(r"[A-Z]{3}", value):
            problems.append(f"{where}: {value!r} is not a currency code")
    if kind == "object" and schema.get("format") == "uri-map":
        for key, item in value.items():
            if not isinstance(item, str) or not item.startswith("/2010-04-01/"):
                problems.append(f"{where}.{key}: {item!r} is not a URI")
    if kind == "object" and "properties" in schema:
        documented = set(schema["properties"])
        for missing in sorted(documented - set(value)):
            problems.append(f"{where}.{missing}: missing")
        for extra in sorted(set(value) - documented):
            problems.append(f"{where}.{extra}: not documented")
        for name in sorted(documented & set(value)):
            problems.extend(
                schema_problems(spec, schema["properties"][name], value[name], f"{where}.{name}")
            )
    if kind == "array" and "items" in schema:
        for index, item in enumerate(value):
            problems.extend(schema_problems(spec, schema["items"], item, f"{where}[{index}]"))
    return problems


def message_problems(spec: Mapping[str, Any], resource: Any) -> list[str]:
    """Problems of a Message resource under ``api.v2010.account.message``.

    The schema has no ``required`` list; Twilio always sends every property, so the
    fake must too, and nothing undocumented.
    """
    return schema_problems(spec, {"$ref": MESSAGE_SCHEMA}, resource, "message")


def error_problems(status: int, answer: Any) -> list[str]:
    """Problems of an error answer under Twilio's ``{code, message, more_info, status}``."""
    if not isinstance(answer, dict) or set(answer) != ERROR_KEYS:
        return [f"error body {answer!r} does not have exactly {sorted(ERROR_KEYS)}"]
    problems = []
    if not isinstance(answer["code"], int) or isinstance(answer["code"], bool):
        problems.append(f"error code {answer['code']!r} is not an integer")
    if answer["status"] != status:
        problems.append(f"error status {answer['status']!r} is not the HTTP status {status}")
    if not isinstance(answer["message"], str) or not answer["message"]:
        problems.append("error message is empty")
    if answer["more_info"] != f"https://www.twilio.com/docs/errors/{answer['code']}":
        problems.append(f"more_info {answer['more_info']!r} does not point at the code")
    return problems


def exchange_problems(spec: Mapping[str, Any], requests: list[RecordedRequest]) -> list[str]:
    """Every request used documented fields only; every answer has a documented shape."""
    documented = documented_create_fields(spec)
    problems: list[str] = []
    for number, request in enumerate(requests):
        where = f"request {number} ({request.method} {request.path})"
        undocumented = set(request.params) - documented
        if undocumented:
            problems.append(f"{where}: undocumented fields {sorted(undocumented)}")
        if request.status_code in (200, 201):
            problems.extend(f"{where}: {p}" for p in message_problems(spec, request.answer))
        else:
            problems.extend(
                f"{where}: {p}" for p in error_problems(request.status_code, request.answer)
            )
    return problems


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return load_spec()


@pytest.fixture
def account_sid() -> str:
    return new_account_sid()


@pytest.fixture
async def served(account_sid: str, tmp_path: Path) -> AsyncIterator[TwilioFake]:
    async with serve_twilio_fake("127.0.0.1", 0, account_sid, TOKEN, tmp_path / "sms") as fake:
        yield fake


@pytest.fixture
async def bare(account_sid: str) -> AsyncIterator[TwilioFake]:
    """The app without a server, spoken to in-process."""
    fake = build_twilio_fake(account_sid, TOKEN)
    yield fake
    await fake.aclose()


@pytest.fixture
async def api(bare: TwilioFake) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=bare.app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="https://api.twilio.test",
        auth=(bare.account_sid, TOKEN),
    ) as client:
        yield client


@pytest.fixture
async def sdk(served: TwilioFake) -> AsyncIterator[Any]:
    """The official SDK client, on aiohttp, pointed at the served fake."""
    client = Client(served.account_sid, TOKEN, http_client=AsyncTwilioHttpClient())
    client.api.base_url = served.base_url
    yield client
    await client.http_client.close()


@dataclass
class ReceivedCallback:
    url: str
    params: dict[str, str]
    signature: str


@dataclass
class CallbackReceiver:
    served: HttpServer
    received: list[ReceivedCallback] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"{self.served.url}/twilio/status"


@pytest.fixture
async def receiver() -> AsyncIterator[CallbackReceiver]:
    """A local endpoint that keeps every status callback it is sent."""
    received: list[ReceivedCallback] = []

    async def status(request: Request) -> Response:
        form = await request.form()
        received.append(
            ReceivedCallback(
                url=str(request.url),
                params={key: str(value) for key, value in form.items()},
                signature=request.headers.get("X-Twilio-Signature", ""),
            )
        )
        return PlainTextResponse("", status_code=204)

    app = Starlette(routes=[Route("/twilio/status", status, methods=["POST"])])
    async with serve_http(app, "127.0.0.1", 0) as served:
        yield CallbackReceiver(served=served, received=received)


def _create_url(account_sid: str) -> str:
    return f"/2010-04-01/Accounts/{account_sid}/Messages.json"


# -- the description and the fake agree --------------------------------------------------------


def test_fake_accepts_exactly_the_documented_create_fields(spec: dict[str, Any]) -> None:
    assert documented_create_fields(spec) == set(CREATE_MESSAGE_FIELDS)
    assert create_request_schema(spec)["required"] == ["To"]
    assert set(spec["paths"]) == {CREATE_PATH, FETCH_PATH}


def test_the_schema_checker_notices_wrong_resources(spec: dict[str, Any]) -> None:
    created = spec["paths"][CREATE_PATH]["post"]["responses"]["201"]
    example = created["content"]["application/json"]["examples"]["create"]["value"]
    assert message_problems(spec, example) == []
    assert message_problems(spec, {**example, "status": "lost"})
    assert message_problems(spec, {**example, "num_segments": 1})
    assert message_problems(spec, {**example, "sid": "XX" + "a" * 32})
    assert message_problems(spec, {**example, "date_created": "2023-08-24T05:01:45Z"})
    assert message_problems(spec, {**example, "invented": True})
    assert message_problems(spec, {k: v for k, v in example.items() if k != "uri"})


# -- the SDK against the served fake ------------------------------------------------------------


async def test_sdk_create_is_accepted_and_recorded_as_sent(
    served: TwilioFake, sdk: Any, spec: dict[str, Any]
) -> None:
    message = await sdk.messages.create_async(
        to=CUSTOMER,
        from_=SENDER,
        body="Your parcel is on its way.",
        status_callback="https://shop.example/twilio/status",
    )

    assert re.fullmatch(r"SM[0-9a-f]{32}", message.sid)
    assert message.status == "queued"
    assert (message.to, message.from_, message.body) == (
        CUSTOMER,
        SENDER,
        "Your parcel is on its way.",
    )
    assert message.account_sid == served.account_sid
    assert message.direction == "outbound-api"
    assert message.num_segments == "1"
    assert message.date_created is not None  # the SDK parsed the RFC 2822 date

    [recorded] = served.messages
    assert recorded.sid == message.sid
    assert recorded.params == {
        "To": [CUSTOMER],
        "From": [SENDER],
        "Body": ["Your parcel is on its way."],
        "StatusCallback": ["https://shop.example/twilio/status"],
    }
    assert (recorded.to, recorded.from_, recorded.body) == (
        CUSTOMER,
        SENDER,
        "Your parcel is on its way.",
    )
    assert recorded.status_callback == "https://shop.example/twilio/status"
    assert recorded.media == []
    assert exchange_problems(spec, served.requests) == []


async def test_sdk_fetch_reads_the_message_back(
    served: TwilioFake, sdk: Any, spec: dict[str, Any]
) -> None:
    created = await sdk.messages.create_async(to=CUSTOMER, from_=SENDER, body="Hi")
    await served.settle()

    fetched = await sdk.messages(created.sid).fetch_async()

    assert fetched.sid == created.sid
    assert fetched.status == "delivered"
    assert fetched.date_sent is not None
    assert served.requests[-1].method == "GET"
    assert exchange_problems(spec, served.requests) == []


async def test_serving_on_port_zero_reports_the_bound_port(served: TwilioFake) -> None:
    assert served.port > 0
    assert served.base_url == f"http://127.0.0.1:{served.port}"
    async with httpx.AsyncClient() as client:
        answer = await client.get(f"{served.base_url}/2010-04-01/Nothing.json")
    assert answer.status_code == 404
    assert error_problems(404, answer.json()) == []


async def test_serving_on_a_given_port(account_sid: str) -> None:
    port = free_port()
    async with serve_twilio_fake("127.0.0.1", port, account_sid, TOKEN) as fake:
        assert fake.port == port
        assert fake.base_url == f"http://127.0.0.1:{port}"


async def test_each_message_is_written_to_the_folder(
    served: TwilioFake, sdk: Any, tmp_path: Path
) -> None:
    created = await sdk.messages.create_async(to=CUSTOMER, from_=SENDER, body="Hallo")
    await served.settle()

    [path] = sorted((tmp_path / "sms").glob("*.json"))
    assert created.sid in path.name
    record = json.loads(path.read_text(encoding="utf-8"))
    assert (record["to"], record["from"], record["body"]) == (CUSTOMER, SENDER, "Hallo")
    assert record["status"] == "delivered"
    assert record["params"] == {"To": [CUSTOMER], "From": [SENDER], "Body": ["Hallo"]}
    assert not list((tmp_path / "sms").glob("*.part"))


# -- authentication ----------------------------------------------------------------------------


async def test_wrong_token_is_401_in_twilio_shape(api: httpx.AsyncClient, bare: TwilioFake) -> None:
    answer = await api.post(
        _create_url(bare.account_sid),
        data={"To": CUSTOMER, "From": SENDER, "Body": "x"},
        auth=(bare.account_sid, "not-the-token"),
    )
    assert answer.status_code == 401
    assert answer.json()["code"] == 20003
    assert error_problems(401, answer.json()) == []
    assert answer.headers["WWW-Authenticate"].startswith("Basic")
    assert bare.messages == []


async def test_missing_or_malformed_credentials_are_401(bare: TwilioFake) -> None:
    transport = httpx.ASGITransport(app=bare.app)
    async with httpx.AsyncClient(transport=transport, base_url="https://api.twilio.test") as raw:
        data = {"To": CUSTOMER, "From": SENDER, "Body": "x"}
        url = _create_url(bare.account_sid)
        missing = await raw.post(url, data=data)
        garbled = await raw.post(url, data=data, headers={"Authorization": "Basic %%%"})
        no_colon = base64.b64encode(bare.account_sid.encode()).decode()
        half = await raw.post(url, data=data, headers={"Authorization": f"Basic {no_colon}"})
    for answer in (missing, garbled, half):
        assert answer.status_code == 401
        assert error_problems(401, answer.json()) == []


async def test_another_accounts_path_is_refused(api: httpx.AsyncClient, bare: TwilioFake) -> None:
    answer = await api.post(
        _create_url(new_account_sid()), data={"To": CUSTOMER, "From": SENDER, "Body": "x"}
    )
    assert answer.status_code == 401
    assert answer.json()["code"] == 20003
    assert bare.messages == []


async def test_sdk_with_wrong_token_gets_401(served: TwilioFake) -> None:
    from twilio.base.exceptions import TwilioRestException  # type: ignore[import-untyped]

    client = Client(served.account_sid, "wrong", http_client=AsyncTwilioHttpClient())
    client.api.base_url = served.base_url
    try:
        with pytest.raises(TwilioRestException) as caught:
            await client.messages.create_async(to=CUSTOMER, from_=SENDER, body="x")
    finally:
        await client.http_client.close()
    assert (caught.value.status, caught.value.code) == (401, 20003)


# -- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ({"From": SENDER, "Body": "x"}, 21604),
        ({"To": CUSTOMER, "Body": "x"}, 21603),
        ({"To": CUSTOMER, "From": SENDER}, 21602),
        ({"To": CUSTOMER, "From": SENDER, "Body": "x", "Priority": "high"}, 20001),
        ({"To": "015112345678", "From": SENDER, "Body": "x"}, 21211),
        ({"To": "+0123", "From": SENDER, "Body": "x"}, 21211),
        ({"To": "whatsapp:+4915112345678", "From": SENDER, "Body": "x"}, 21211),
        ({"To": CUSTOMER, "From": "whatsapp:+14155238886", "Body": "x"}, 21211),
        ({"To": CUSTOMER, "From": SENDER, "Body": "x" * 1601}, 21617),
        ({"To": CUSTOMER, "From": SENDER, "Body": "x", "StatusCallback": "ftp://x"}, 21609),
    ],
    ids=[
        "no-to",
        "no-from",
        "no-body",
        "unknown-field",
        "national-number",
        "bad-e164",
        "whatsapp-to-from-sms-sender",
        "sms-to-from-whatsapp-sender",
        "body-too-long",
        "bad-callback",
    ],
)
async def test_invalid_creates_are_400_with_twilio_codes(
    api: httpx.AsyncClient, bare: TwilioFake, data: dict[str, str], code: int
) -> None:
    answer = await api.post(_create_url(bare.account_sid), data=data)
    assert answer.status_code == 400
    assert answer.json()["code"] == code
    assert error_problems(400, answer.json()) == []
    assert bare.messages == []


async def test_unsubscribed_recipient_is_21610(api: httpx.AsyncClient, bare: TwilioFake) -> None:
    bare.unsubscribed.add(CUSTOMER)
    for to, sender in ((CUSTOMER, SENDER), (f"whatsapp:{CUSTOMER}", "whatsapp:+14155238886")):
        answer = await api.post(
            _create_url(bare.account_sid), data={"To": to, "From": sender, "Body": "x"}
        )
        assert answer.status_code == 400
        assert answer.json()["code"] == 21610
        assert error_problems(400, answer.json()) == []
    assert bare.messages == []


async def test_messaging_service_media_and_whatsapp_shapes(
    api: httpx.AsyncClient, bare: TwilioFake, spec: dict[str, Any]
) -> None:
    service = "MG" + "0123456789abcdef" * 2
    by_service = await api.post(
        _create_url(bare.account_sid),
        data={"To": CUSTOMER, "MessagingServiceSid": service, "Body": "x"},
    )
    media = await api.post(
        _create_url(bare.account_sid),
        data={
            "To": CUSTOMER,
            "From": SENDER,
            "MediaUrl": ["https://shop.example/a.png", "https://shop.example/b.png"],
        },
    )
    whatsapp = await api.post(
        _create_url(bare.account_sid),
        data={"To": f"whatsapp:{CUSTOMER}", "From": "whatsapp:+14155238886", "Body": "x"},
    )

    assert [a.status_code for a in (by_service, media, whatsapp)] == [201, 201, 201]
    assert by_service.json()["from"] is None
    assert by_service.json()["messaging_service_sid"] == service
    assert media.json()["sid"].startswith("MM")
    assert media.json()["num_media"] == "2"
    assert media.json()["body"] == ""
    assert bare.messages[1].media == ["https://shop.example/a.png", "https://shop.example/b.png"]
    assert whatsapp.json()["to"] == f"whatsapp:{CUSTOMER}"
    assert whatsapp.json()["from"] == "whatsapp:+14155238886"
    assert exchange_problems(spec, bare.requests) == []


async def test_fetching_an_unknown_message_is_404(api: httpx.AsyncClient, bare: TwilioFake) -> None:
    sid = "SM" + "f" * 32
    answer = await api.get(f"/2010-04-01/Accounts/{bare.account_sid}/Messages/{sid}.json")
    assert answer.status_code == 404
    assert answer.json()["code"] == 20404
    assert error_problems(404, answer.json()) == []


@pytest.mark.parametrize(
    ("body", "segments"),
    [
        ("a" * 160, "1"),
        ("a" * 161, "2"),
        ("a" * 306, "2"),
        ("a" * 307, "3"),
        ("€" * 80, "1"),  # extension characters take two septets
        ("€" * 81, "2"),
        ("ą" * 70, "1"),
        ("ą" * 71, "2"),
        ("👍" * 35, "1"),  # two UTF-16 units each
        ("👍" * 36, "2"),
        # 306 septets, but the euro sign's escape sequence is not split after 152 letters.
        ("a" * 152 + "€" + "a" * 152, "3"),
    ],
    ids=[
        "160",
        "161",
        "306",
        "307",
        "euro80",
        "euro81",
        "ucs70",
        "ucs71",
        "emoji35",
        "emoji36",
        "escape-not-split",
    ],
)
async def test_num_segments_follow_gsm7_and_ucs2_limits(
    api: httpx.AsyncClient, bare: TwilioFake, body: str, segments: str
) -> None:
    answer = await api.post(
        _create_url(bare.account_sid), data={"To": CUSTOMER, "From": SENDER, "Body": body}
    )
    assert answer.status_code == 201
    assert answer.json()["num_segments"] == segments


async def test_a_long_whatsapp_message_is_one_segment(
    api: httpx.AsyncClient, bare: TwilioFake
) -> None:
    answer = await api.post(
        _create_url(bare.account_sid),
        data={"To": f"whatsapp:{CUSTOMER}", "From": "whatsapp:+14155238886", "Body": "a" * 400},
    )
    assert answer.status_code == 201
    assert answer.json()["num_segments"] == "1"


# -- forced answers ------------------------------------------------------------------------------


async def test_forced_429_carries_retry_after_and_is_used_once(
    api: httpx.AsyncClient, bare: TwilioFake
) -> None:
    bare.fail_next(status=429, retry_after=2)
    data = {"To": CUSTOMER, "From": SENDER, "Body": "x"}

    limited = await api.post(_create_url(bare.account_sid), data=data)
    accepted = await api.post(_create_url(bare.account_sid), data=data)

    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "2"
    assert limited.json()["code"] == 20429
    assert error_problems(429, limited.json()) == []
    assert accepted.status_code == 201
    assert len(bare.messages) == 1
    assert bare.pending_failures == 0


async def test_forced_answers_queue_in_order(api: httpx.AsyncClient, bare: TwilioFake) -> None:
    bare.fail_next(status=500)
    bare.fail_next(status=400, code=63016, message="Outside the allowed window")
    data = {"To": CUSTOMER, "From": SENDER, "Body": "x"}

    first = await api.post(_create_url(bare.account_sid), data=data)
    second = await api.post(_create_url(bare.account_sid), data=data)

    assert (first.status_code, first.json()["code"]) == (500, 20500)
    assert "Retry-After" not in first.headers
    assert (second.status_code, second.json()["code"]) == (400, 63016)
    assert error_problems(500, first.json()) == []
    assert error_problems(400, second.json()) == []
    assert bare.messages == []


def test_forced_answers_must_be_errors(bare: TwilioFake) -> None:
    with pytest.raises(ValueError, match="error status"):
        bare.fail_next(status=201)


# -- status callbacks ------------------------------------------------------------------------------


async def test_status_callbacks_are_signed_like_twilio(
    served: TwilioFake, sdk: Any, receiver: CallbackReceiver
) -> None:
    message = await sdk.messages.create_async(
        to=CUSTOMER, from_=SENDER, body="Hi", status_callback=receiver.url
    )
    await served.wait_for_callbacks(2)

    assert [c.params["MessageStatus"] for c in receiver.received] == ["sent", "delivered"]
    validator = RequestValidator(TOKEN)
    for callback in receiver.received:
        assert callback.url == receiver.url
        assert callback.params["MessageSid"] == message.sid
        assert callback.params["AccountSid"] == served.account_sid
        assert (callback.params["From"], callback.params["To"]) == (SENDER, CUSTOMER)
        assert "ErrorCode" not in callback.params
        assert validator.validate(callback.url, callback.params, callback.signature)
    assert [c.status_code for c in served.callbacks] == [204, 204]

    delivered = receiver.received[-1]
    tampered = {**delivered.params, "MessageStatus": "undelivered"}
    assert not validator.validate(delivered.url, tampered, delivered.signature)
    assert not validator.validate(delivered.url + "?x=1", delivered.params, delivered.signature)
    assert not RequestValidator("another-token").validate(
        delivered.url, delivered.params, delivered.signature
    )


async def test_undeliverable_numbers_report_30003(
    served: TwilioFake, sdk: Any, receiver: CallbackReceiver, spec: dict[str, Any]
) -> None:
    served.undeliverable.add(CUSTOMER)
    message = await sdk.messages.create_async(
        to=CUSTOMER, from_=SENDER, body="Hi", status_callback=receiver.url
    )
    await served.wait_for_callbacks(2)

    statuses = [(c.params["MessageStatus"], c.params.get("ErrorCode")) for c in receiver.received]
    assert statuses == [("sent", None), ("undelivered", "30003")]
    validator = RequestValidator(TOKEN)
    assert all(validator.validate(c.url, c.params, c.signature) for c in receiver.received)

    fetched = await sdk.messages(message.sid).fetch_async()
    assert (fetched.status, fetched.error_code) == ("undelivered", 30003)
    assert exchange_problems(spec, served.requests) == []


async def test_callbacks_in_flight_are_bounded_and_all_arrive(account_sid: str) -> None:
    """A burst of texts: the fake posts at most ``callbacks_in_flight`` reports at
    once to a slow endpoint, and every report still arrives."""
    busy, most = 0, 0
    arrived: list[str] = []

    async def slow_status(request: Request) -> Response:
        nonlocal busy, most
        busy += 1
        most = max(most, busy)
        await asyncio.sleep(0.02)
        form = await request.form()
        arrived.append(str(form["MessageStatus"]))
        busy -= 1
        return PlainTextResponse("", status_code=204)

    endpoint = Starlette(routes=[Route("/twilio/status", slow_status, methods=["POST"])])
    async with (
        serve_http(endpoint, "127.0.0.1", 0) as endpoint_served,
        serve_twilio_fake("127.0.0.1", 0, account_sid, TOKEN, callbacks_in_flight=3) as fake,
    ):
        client = Client(fake.account_sid, TOKEN, http_client=AsyncTwilioHttpClient())
        client.api.base_url = fake.base_url
        url = f"{endpoint_served.url}/twilio/status"
        try:
            await asyncio.gather(
                *(
                    client.messages.create_async(
                        to=CUSTOMER, from_=SENDER, body=f"Hi {n}", status_callback=url
                    )
                    for n in range(20)
                )
            )
            attempts = await fake.wait_for_callbacks(40)
        finally:
            await client.http_client.close()

    assert all(attempt.status_code == 204 for attempt in attempts)
    assert sorted(arrived) == ["delivered"] * 20 + ["sent"] * 20
    assert 1 <= most <= 3


def test_callbacks_in_flight_must_be_positive(account_sid: str) -> None:
    with pytest.raises(ValueError, match="callbacks_in_flight"):
        build_twilio_fake(account_sid, TOKEN, callbacks_in_flight=0)


async def test_a_failing_callback_is_logged_not_raised(served: TwilioFake, sdk: Any) -> None:
    dead = f"http://127.0.0.1:{free_port()}/twilio/status"
    await sdk.messages.create_async(to=CUSTOMER, from_=SENDER, body="Hi", status_callback=dead)
    attempts = await served.wait_for_callbacks(2)

    assert all(a.status_code is None and a.error for a in attempts)
    # The fake keeps serving.
    second = await sdk.messages.create_async(to=CUSTOMER, from_=SENDER, body="Again")
    assert second.status == "queued"
