"""DevicesService over real gRPC, on SQLite and PostgreSQL: registering, listing and
removing a customer's push devices, every bad field named, and erasure."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aftercare.v1 import devices_pb2 as pb
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from temporalio.client import Client

from clients import CustomerErasedError, DeviceNotFoundError, InvalidRequestError
from engine.devstack.mail_sink import MailSink
from engine.messaging.push_devices import device_id_of
from engine.messaging.web_push_keys import b64url_encode
from engine.platform.database.migrate import upgrade_database
from tests.support.databases import sqlite_url
from tests.support.ids import new_order_id
from tests.support.preferences import PreferencesStack, preferences_stack

TOKEN = "dGVzdC10b2tlbi1vbmU:APA91bH_devices_api_1"
OTHER = "dGVzdC10b2tlbi10d28:APA91bH_devices_api_2"


@pytest.fixture
async def stack(
    temporal_client: Client, database_url: str, tmp_path: Path, mail_sink: MailSink
) -> AsyncIterator[PreferencesStack]:
    async with preferences_stack(
        temporal_client, database_url, tmp_path, mail_sink, with_worker=False
    ) as running:
        yield running


def customer() -> str:
    return new_order_id("cus")


async def test_devices_are_registered_listed_and_removed(stack: PreferencesStack) -> None:
    client, customer_id = stack.client, customer()
    first = await client.register_device(customer_id, TOKEN, pb.DEVICE_PLATFORM_ANDROID)
    again = await client.register_device(customer_id, TOKEN, pb.DEVICE_PLATFORM_ANDROID)
    await client.register_device(customer_id, OTHER, pb.DEVICE_PLATFORM_WEB)
    assert first.created
    assert not again.created
    # The device is named by the token's hash; the token is never given back.
    assert first.device.device_id == device_id_of(TOKEN)
    listed = (await client.list_devices(customer_id)).devices
    assert [d.device_id for d in listed] == [device_id_of(TOKEN), device_id_of(OTHER)]
    assert TOKEN not in str(listed)

    await client.remove_device(customer_id, device_id=first.device.device_id)
    await client.remove_device(customer_id, token=OTHER)
    assert not (await client.list_devices(customer_id)).devices
    with pytest.raises(DeviceNotFoundError):
        await client.remove_device(customer_id, token=OTHER)


async def test_a_token_registered_by_another_customer_moves_to_the_new_one(
    stack: PreferencesStack,
) -> None:
    client, before, after = stack.client, customer(), customer()
    await client.register_device(before, TOKEN, pb.DEVICE_PLATFORM_IOS)
    moved = await client.register_device(after, TOKEN, pb.DEVICE_PLATFORM_IOS)
    assert moved.created
    assert not (await client.list_devices(before)).devices
    assert [d.platform for d in (await client.list_devices(after)).devices] == [
        pb.DEVICE_PLATFORM_IOS
    ]


BAD_REGISTRATIONS: list[tuple[tuple[str, str, int], set[str]]] = [
    (("", TOKEN, 1), {"customer_id"}),
    (("jane@example.test", TOKEN, 1), {"customer_id"}),
    (("c-1", "", 1), {"token"}),
    (("c-1", "has space", 1), {"token"}),
    (("c-1", "x" * 4097, 1), {"token"}),
    (("c-1", TOKEN, 0), {"platform"}),
    (("", "", 9), {"customer_id", "token", "platform"}),
]
BAD_REMOVALS: list[tuple[tuple[str, str], str]] = [
    (("", ""), "device_id"),
    (("abc", ""), "device_id"),
    ((device_id_of(TOKEN), TOKEN), "device_id"),
    (("", "bad token"), "token"),
]


async def test_bad_requests_name_every_bad_field(
    temporal_client: Client, tmp_path: Path, mail_sink: MailSink
) -> None:
    # Validation happens before the database is asked: SQLite alone covers it.
    database = sqlite_url(tmp_path)
    upgrade_database(database)
    async with preferences_stack(
        temporal_client, database, tmp_path, mail_sink, with_worker=False
    ) as stack:
        client = stack.client
        for (customer_id, token, platform), expected in BAD_REGISTRATIONS:
            with pytest.raises(InvalidRequestError) as raised:
                await client.register_device(
                    customer_id, token, pb.DevicePlatform.ValueType(platform)
                )
            assert set(raised.value.fields) == expected, (customer_id, token, platform)
        for (device_id, token), field in BAD_REMOVALS:
            with pytest.raises(InvalidRequestError) as raised:
                await client.remove_device("c-1", device_id=device_id, token=token)
            assert list(raised.value.fields) == [field], (device_id, token)
        assert not (await client.list_devices("c-1")).devices
        with pytest.raises(InvalidRequestError) as raised:
            await client.list_devices("")
        assert list(raised.value.fields) == ["customer_id"]


async def test_erasure_removes_the_devices_and_refuses_new_ones(
    temporal_client: Client, tmp_path: Path, mail_sink: MailSink, database_url: str
) -> None:
    async with preferences_stack(temporal_client, database_url, tmp_path, mail_sink) as stack:
        client, customer_id, bystander = stack.client, customer(), customer()
        await client.register_device(customer_id, TOKEN, pb.DEVICE_PLATFORM_ANDROID)
        await client.register_device(bystander, OTHER, pb.DEVICE_PLATFORM_ANDROID)
        erased = await client.erase_customer(customer_id)
        assert erased.finished
        assert not (await client.list_devices(customer_id)).devices
        assert len((await client.list_devices(bystander)).devices) == 1
        with pytest.raises(CustomerErasedError):
            await client.register_device(customer_id, TOKEN, pb.DEVICE_PLATFORM_ANDROID)


def browser_keys() -> tuple[str, str]:
    """A browser's subscription keys: its P-256 public point and an auth secret."""
    point = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )
    return b64url_encode(point), b64url_encode(os.urandom(16))


P256DH, AUTH = browser_keys()
ENDPOINT = "https://updates.push.example/wpush/v2/gAAAAABm-subscription-1"


def web_push(**changes: str) -> pb.WebPushSubscription:
    fields = {"endpoint": ENDPOINT, "p256dh": P256DH, "auth": AUTH, **changes}
    return pb.WebPushSubscription(**fields)


WEB = pb.DEVICE_PLATFORM_WEB
# (token, platform, subscription) and the fields named.
BAD_WEB_PUSH: list[tuple[tuple[str, int, pb.WebPushSubscription], set[str]]] = [
    (("", WEB, web_push(endpoint="")), {"web_push.endpoint"}),
    (("", WEB, web_push(endpoint="http://push.example/x")), {"web_push.endpoint"}),
    (("", WEB, web_push(endpoint="ftp://push.example/x")), {"web_push.endpoint"}),
    (("", WEB, web_push(endpoint="https://u:p@push.example/x")), {"web_push.endpoint"}),
    (("", WEB, web_push(p256dh="")), {"web_push.p256dh"}),
    (("", WEB, web_push(p256dh="not base64url!")), {"web_push.p256dh"}),
    (("", WEB, web_push(p256dh=AUTH)), {"web_push.p256dh"}),  # 16 bytes, no point
    (("", WEB, web_push(p256dh=b64url_encode(b"\x04" + b"\x01" * 64))), {"web_push.p256dh"}),
    (("", WEB, web_push(auth=P256DH)), {"web_push.auth"}),
    (("", WEB, web_push(auth="")), {"web_push.auth"}),
    ((TOKEN, WEB, web_push()), {"web_push"}),
    (("", pb.DEVICE_PLATFORM_IOS, web_push()), {"platform"}),
    (("", WEB, web_push(endpoint="", auth="")), {"web_push.endpoint", "web_push.auth"}),
]


async def test_a_browser_subscription_is_registered_and_a_bad_one_refused_by_field(
    temporal_client: Client, tmp_path: Path, mail_sink: MailSink
) -> None:
    database = sqlite_url(tmp_path)
    upgrade_database(database)
    async with preferences_stack(
        temporal_client, database, tmp_path, mail_sink, with_worker=False
    ) as stack:
        client, customer_id = stack.client, customer()
        for (token, platform, subscription), expected in BAD_WEB_PUSH:
            with pytest.raises(InvalidRequestError) as raised:
                await client.register_device(
                    customer_id,
                    token,
                    pb.DevicePlatform.ValueType(platform),
                    web_push=subscription,
                )
            assert set(raised.value.fields) == expected, (token, platform, subscription)
        assert not (await client.list_devices(customer_id)).devices

        # Padded keys, as some libraries give them, and the platform left unset.
        registered = await client.register_device(
            customer_id, web_push=web_push(p256dh=P256DH + "=", auth=AUTH + "==")
        )
        # A web page using FCM's JavaScript SDK registers its FCM token as web.
        await client.register_device(customer_id, TOKEN, pb.DEVICE_PLATFORM_WEB)
        listed = (await client.list_devices(customer_id)).devices
        assert [(d.device_id, d.platform, d.push_service) for d in listed] == [
            (device_id_of(ENDPOINT), pb.DEVICE_PLATFORM_WEB, "https://updates.push.example"),
            (device_id_of(TOKEN), pb.DEVICE_PLATFORM_WEB, ""),
        ]
        assert registered.device.device_id == device_id_of(ENDPOINT)
        assert P256DH not in str(listed)
        assert ENDPOINT not in str(listed)
        # Removed by its endpoint, as an app's device is by its token.
        await client.remove_device(customer_id, token=ENDPOINT)
        assert len((await client.list_devices(customer_id)).devices) == 1
