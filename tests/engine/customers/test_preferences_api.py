"""PreferencesService over real gRPC, on SQLite and PostgreSQL: get, update, partial
update, unsubscribe, and a named field violation for every bad field (which then
changes nothing)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from aftercare.v1 import journey_pb2 as jpb
from aftercare.v1 import preferences_pb2 as pb
from google.protobuf.field_mask_pb2 import FieldMask
from temporalio.client import Client

from clients import AftercareClient, InvalidRequestError
from engine.access.api_keys import ApiKeyStore
from engine.access.scopes import ALL_SCOPES
from engine.customers.consent import SOURCE_COMPLAINT, ConsentLedger
from engine.customers.inbound_sms import SOURCE_START, SOURCE_STOP
from engine.customers.pages.preference_centre import SOURCE as PREFERENCE_CENTRE_SOURCE
from engine.customers.pages.unsubscribe import SOURCE_ONE_CLICK, SOURCE_PAGE
from engine.devstack.mail_sink import MailSink
from engine.platform.database.connection import create_engine, create_session_factory
from tests.support.ids import new_order_id
from tests.support.marks import TEST_MARKS
from tests.support.preferences import PreferencesStack, preferences_stack

# The sources the service itself writes (the link pages and inbound texts).
SYSTEM_SOURCES = (
    "one_click",
    "unsubscribe_page",
    "sms_stop",
    "sms_start",
    "preference_centre",
    "complaint",
)
CHANNELS = (jpb.CHANNEL_EMAIL, jpb.CHANNEL_SMS, jpb.CHANNEL_WHATSAPP, jpb.CHANNEL_PUSH)
NEEDING_CONSENT = (
    pb.MESSAGE_CATEGORY_RELATIONSHIP,
    pb.MESSAGE_CATEGORY_FEEDBACK,
    pb.MESSAGE_CATEGORY_MARKETING,
)


@pytest.fixture
async def stack(
    temporal_client: Client, database_url: str, tmp_path: Path, mail_sink: MailSink
) -> AsyncIterator[PreferencesStack]:
    # No worker: these customers have no journeys, so nothing is notified.
    async with preferences_stack(
        temporal_client, database_url, tmp_path, mail_sink, with_worker=False
    ) as running:
        yield running


def customer() -> str:
    return new_order_id("cus")


def consent_of(
    preferences: pb.Preferences,
    channel: jpb.Channel.ValueType,
    category: pb.MessageCategory.ValueType,
) -> pb.Consent:
    [found] = [c for c in preferences.consents if c.channel == channel and c.category == category]
    return found


def refused(preferences: pb.Preferences) -> set[tuple[int, int]]:
    return {(c.channel, c.category) for c in preferences.consents if not c.granted}


async def test_a_customer_nobody_recorded_anything_for_gets_the_defaults(
    stack: PreferencesStack,
) -> None:
    answer = await stack.client.get_preferences(customer(), include_history=True)
    preferences = answer.preferences
    assert len(preferences.consents) == 16  # 4 channels x 4 categories
    assert all(consent.granted for consent in preferences.consents)
    for channel in CHANNELS:
        transactional = consent_of(preferences, channel, pb.MESSAGE_CATEGORY_TRANSACTIONAL)
        assert transactional.source == "not_required"
        for category in NEEDING_CONSENT:
            consent = consent_of(preferences, channel, category)
            assert consent.source == "default"
            assert not consent.HasField("recorded_at")
    assert (preferences.locale, preferences.timezone) == ("", "")
    assert not preferences.HasField("quiet_hours")
    assert not preferences.HasField("updated_at")
    assert preferences.preferred_channel == jpb.CHANNEL_UNSPECIFIED
    assert list(answer.history) == []


async def test_update_everything_then_read_it_back(stack: PreferencesStack) -> None:
    who = customer()
    answer = await stack.client.update_preferences(
        pb.UpdatePreferencesRequest(
            customer_id=who,
            locale="de-DE",
            timezone="Europe/Berlin",
            quiet_hours=pb.QuietHours(start="22:00", end="7:30"),
            preferred_channel=jpb.CHANNEL_SMS,
            consents=[
                pb.ConsentChange(
                    channel=jpb.CHANNEL_EMAIL,
                    category=pb.MESSAGE_CATEGORY_MARKETING,
                    granted=False,
                ),
                pb.ConsentChange(category=pb.MESSAGE_CATEGORY_FEEDBACK, granted=False),
            ],
            # The shop's own page; "preference_centre" is ours (and refused below).
            source="shop_account_page",
        )
    )
    assert answer.journeys_notified == 0
    stored = (await stack.client.get_preferences(who, include_history=True)).preferences
    assert stored == answer.preferences
    assert stored.locale == "de_DE"
    assert stored.timezone == "Europe/Berlin"
    assert (stored.quiet_hours.start, stored.quiet_hours.end) == ("22:00", "07:30")
    assert stored.preferred_channel == jpb.CHANNEL_SMS
    assert stored.HasField("updated_at")
    assert refused(stored) == {
        (jpb.CHANNEL_EMAIL, pb.MESSAGE_CATEGORY_MARKETING),
        (jpb.CHANNEL_EMAIL, pb.MESSAGE_CATEGORY_FEEDBACK),
        (jpb.CHANNEL_SMS, pb.MESSAGE_CATEGORY_FEEDBACK),
        (jpb.CHANNEL_WHATSAPP, pb.MESSAGE_CATEGORY_FEEDBACK),
        (jpb.CHANNEL_PUSH, pb.MESSAGE_CATEGORY_FEEDBACK),
    }
    marketing_email = consent_of(stored, jpb.CHANNEL_EMAIL, pb.MESSAGE_CATEGORY_MARKETING)
    assert marketing_email.source == "shop_account_page"
    assert marketing_email.HasField("recorded_at")


async def test_a_partial_update_changes_only_what_was_sent(stack: PreferencesStack) -> None:
    who = customer()
    await stack.client.update_preferences(
        pb.UpdatePreferencesRequest(
            customer_id=who,
            locale="en-GB",
            timezone="Europe/London",
            quiet_hours=pb.QuietHours(start="21:00", end="09:00"),
            preferred_channel=jpb.CHANNEL_EMAIL,
        )
    )
    # Field presence: only the time zone is present.
    after = await stack.client.update_preferences(
        pb.UpdatePreferencesRequest(customer_id=who, timezone="America/New_York")
    )
    assert after.preferences.timezone == "America/New_York"
    assert after.preferences.locale == "en_GB"
    assert after.preferences.quiet_hours.start == "21:00"
    assert after.preferences.preferred_channel == jpb.CHANNEL_EMAIL
    assert not refused(after.preferences)

    # A consent change alone leaves every other preference as it was.
    after = await stack.client.update_preferences(
        pb.UpdatePreferencesRequest(
            customer_id=who,
            consents=[
                pb.ConsentChange(
                    channel=jpb.CHANNEL_SMS,
                    category=pb.MESSAGE_CATEGORY_RELATIONSHIP,
                    granted=False,
                )
            ],
        )
    )
    assert refused(after.preferences) == {(jpb.CHANNEL_SMS, pb.MESSAGE_CATEGORY_RELATIONSHIP)}
    assert after.preferences.timezone == "America/New_York"
    assert after.preferences.locale == "en_GB"

    # With a mask, exactly the named fields change; a named empty field is cleared,
    # and fields present but not named are left alone.
    after = await stack.client.update_preferences(
        pb.UpdatePreferencesRequest(
            customer_id=who,
            locale="fr",
            update_mask=FieldMask(paths=["quiet_hours", "preferred_channel"]),
        )
    )
    assert not after.preferences.HasField("quiet_hours")
    assert after.preferences.preferred_channel == jpb.CHANNEL_UNSPECIFIED
    assert after.preferences.locale == "en_GB"
    assert after.preferences.timezone == "America/New_York"


async def test_consent_history_is_the_audit_trail_oldest_first(stack: PreferencesStack) -> None:
    who = customer()
    await stack.client.unsubscribe(who, category=pb.MESSAGE_CATEGORY_MARKETING, source="footer")
    await stack.client.update_preferences(
        pb.UpdatePreferencesRequest(
            customer_id=who,
            consents=[
                pb.ConsentChange(
                    channel=jpb.CHANNEL_SMS,
                    category=pb.MESSAGE_CATEGORY_MARKETING,
                    granted=True,
                )
            ],
        )
    )
    answer = await stack.client.get_preferences(who, include_history=True)
    assert [(h.channel, h.category, h.granted, h.source) for h in answer.history] == [
        (jpb.CHANNEL_UNSPECIFIED, pb.MESSAGE_CATEGORY_MARKETING, False, "footer"),
        (jpb.CHANNEL_SMS, pb.MESSAGE_CATEGORY_MARKETING, True, "api"),
    ]
    assert all(h.HasField("recorded_at") for h in answer.history)
    # The newest matching event decides: marketing by SMS is allowed again.
    assert refused(answer.preferences) == {
        (jpb.CHANNEL_EMAIL, pb.MESSAGE_CATEGORY_MARKETING),
        (jpb.CHANNEL_WHATSAPP, pb.MESSAGE_CATEGORY_MARKETING),
        (jpb.CHANNEL_PUSH, pb.MESSAGE_CATEGORY_MARKETING),
    }
    without = await stack.client.get_preferences(who)
    assert list(without.history) == []


async def test_unsubscribe_from_one_category_on_one_channel(stack: PreferencesStack) -> None:
    who = customer()
    answer = await stack.client.unsubscribe(
        who, category=pb.MESSAGE_CATEGORY_FEEDBACK, channel=jpb.CHANNEL_WHATSAPP
    )
    assert answer.journeys_notified == 0
    assert refused(answer.preferences) == {(jpb.CHANNEL_WHATSAPP, pb.MESSAGE_CATEGORY_FEEDBACK)}
    consent = consent_of(answer.preferences, jpb.CHANNEL_WHATSAPP, pb.MESSAGE_CATEGORY_FEEDBACK)
    assert consent.source == "api"


async def test_unsubscribe_from_everything_keeps_transactional_messages(
    stack: PreferencesStack,
) -> None:
    who = customer()
    answer = await stack.client.unsubscribe(who, source="support_desk")
    assert refused(answer.preferences) == {
        (channel, category) for channel in CHANNELS for category in NEEDING_CONSENT
    }
    for channel in CHANNELS:
        assert consent_of(answer.preferences, channel, pb.MESSAGE_CATEGORY_TRANSACTIONAL).granted
    # Everything on one channel only.
    other = customer()
    answer = await stack.client.unsubscribe(other, channel=jpb.CHANNEL_SMS)
    assert refused(answer.preferences) == {
        (jpb.CHANNEL_SMS, category) for category in NEEDING_CONSENT
    }


UPDATE_ERRORS: list[tuple[str, pb.UpdatePreferencesRequest, str]] = [
    ("customer_id", pb.UpdatePreferencesRequest(customer_id="", locale="de"), "customer_id"),
    (
        "customer_id_chars",
        pb.UpdatePreferencesRequest(customer_id="cus 1; drop", locale="de"),
        "customer_id",
    ),
    ("locale", pb.UpdatePreferencesRequest(locale="xx-not-a-locale"), "locale"),
    ("locale_length", pb.UpdatePreferencesRequest(locale="de" + "-x" * 40), "locale"),
    ("timezone", pb.UpdatePreferencesRequest(timezone="Mars/Olympus_Mons"), "timezone"),
    ("timezone_length", pb.UpdatePreferencesRequest(timezone="Europe/" + "B" * 80), "timezone"),
    (
        "quiet_start",
        pb.UpdatePreferencesRequest(quiet_hours=pb.QuietHours(start="25:00", end="07:00")),
        "quiet_hours.start",
    ),
    (
        "quiet_end",
        pb.UpdatePreferencesRequest(quiet_hours=pb.QuietHours(start="22:00", end="")),
        "quiet_hours.end",
    ),
    (
        "quiet_all_day",
        pb.UpdatePreferencesRequest(quiet_hours=pb.QuietHours(start="08:00", end="8:00")),
        "quiet_hours",
    ),
    (
        "preferred_channel",
        pb.UpdatePreferencesRequest(preferred_channel=jpb.Channel.ValueType(42)),
        "preferred_channel",
    ),
    (
        "consent_category_missing",
        pb.UpdatePreferencesRequest(consents=[pb.ConsentChange(granted=False)]),
        "consents[0].category",
    ),
    (
        "consent_transactional",
        pb.UpdatePreferencesRequest(
            consents=[
                pb.ConsentChange(category=pb.MESSAGE_CATEGORY_MARKETING, granted=False),
                pb.ConsentChange(category=pb.MESSAGE_CATEGORY_TRANSACTIONAL, granted=False),
            ]
        ),
        "consents[1].category",
    ),
    (
        "consent_category_unknown",
        pb.UpdatePreferencesRequest(
            consents=[pb.ConsentChange(category=pb.MessageCategory.ValueType(9))]
        ),
        "consents[0].category",
    ),
    (
        "consent_channel_unknown",
        pb.UpdatePreferencesRequest(
            consents=[
                pb.ConsentChange(
                    channel=jpb.Channel.ValueType(7), category=pb.MESSAGE_CATEGORY_MARKETING
                )
            ]
        ),
        "consents[0].channel",
    ),
    (
        "consents_too_many",
        pb.UpdatePreferencesRequest(
            consents=[pb.ConsentChange(category=pb.MESSAGE_CATEGORY_MARKETING)] * 51
        ),
        "consents",
    ),
    (
        "mask_path",
        pb.UpdatePreferencesRequest(locale="de", update_mask=FieldMask(paths=["locale", "email"])),
        "update_mask.paths[1]",
    ),
    (
        "mask_empty",
        pb.UpdatePreferencesRequest(locale="de", update_mask=FieldMask(paths=[])),
        "update_mask",
    ),
    ("nothing_to_change", pb.UpdatePreferencesRequest(), "update_mask"),
    ("source", pb.UpdatePreferencesRequest(locale="de", source="Not A Source!"), "source"),
    *[
        # What the service itself records: no API caller may claim it.
        (f"source_{source}", pb.UpdatePreferencesRequest(locale="de", source=source), "source")
        for source in SYSTEM_SOURCES
    ],
]


@pytest.mark.parametrize(
    ("request_", "field"),
    [(request, field) for _, request, field in UPDATE_ERRORS],
    ids=[name for name, _, _ in UPDATE_ERRORS],
)
async def test_every_bad_update_field_is_named_and_nothing_changes(
    stack: PreferencesStack, request_: pb.UpdatePreferencesRequest, field: str
) -> None:
    request = pb.UpdatePreferencesRequest()
    request.CopyFrom(request_)
    if field != "customer_id":
        request.customer_id = customer()
    # A valid change rides along: it must not be applied either.
    if not request.HasField("update_mask") and request_.ListFields():
        request.preferred_channel = request.preferred_channel or jpb.CHANNEL_EMAIL
    with pytest.raises(InvalidRequestError) as raised:
        await stack.client.update_preferences(request)
    assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert field in raised.value.fields, raised.value.fields
    if request.customer_id and field != "customer_id":
        after = await stack.client.get_preferences(request.customer_id, include_history=True)
        assert not after.preferences.HasField("updated_at")
        assert list(after.history) == []
        assert all(consent.granted for consent in after.preferences.consents)


UNSUBSCRIBE_ERRORS: list[tuple[str, pb.UnsubscribeRequest, str]] = [
    ("customer_id", pb.UnsubscribeRequest(customer_id=""), "customer_id"),
    (
        "transactional",
        pb.UnsubscribeRequest(customer_id="c", category=pb.MESSAGE_CATEGORY_TRANSACTIONAL),
        "category",
    ),
    (
        "category_unknown",
        pb.UnsubscribeRequest(customer_id="c", category=pb.MessageCategory.ValueType(77)),
        "category",
    ),
    (
        "channel_unknown",
        pb.UnsubscribeRequest(customer_id="c", channel=jpb.Channel.ValueType(77)),
        "channel",
    ),
    ("source", pb.UnsubscribeRequest(customer_id="c", source="x" * 41), "source"),
    *[
        (f"source_{source}", pb.UnsubscribeRequest(customer_id="c", source=source), "source")
        for source in SYSTEM_SOURCES
    ],
]


@pytest.mark.parametrize(
    ("request_", "field"),
    [(request, field) for _, request, field in UNSUBSCRIBE_ERRORS],
    ids=[name for name, _, _ in UNSUBSCRIBE_ERRORS],
)
async def test_every_bad_unsubscribe_field_is_named_and_nothing_changes(
    stack: PreferencesStack, request_: pb.UnsubscribeRequest, field: str
) -> None:
    request = pb.UnsubscribeRequest()
    request.CopyFrom(request_)
    if request.customer_id:
        request.customer_id = customer()
    with pytest.raises(InvalidRequestError) as raised:
        await stack.client._call_preferences(stack.client._preferences.Unsubscribe, request)
    assert field in raised.value.fields, raised.value.fields
    if request.customer_id:
        after = await stack.client.get_preferences(request.customer_id, include_history=True)
        assert list(after.history) == []


async def test_get_and_erase_name_a_bad_customer_id(stack: PreferencesStack) -> None:
    client: AftercareClient = stack.client
    with pytest.raises(InvalidRequestError) as raised:
        await client.get_preferences("has spaces")
    assert list(raised.value.fields) == ["customer_id"]
    with pytest.raises(InvalidRequestError) as raised:
        await client.erase_customer("")
    assert list(raised.value.fields) == ["customer_id"]


async def test_the_system_sources_are_the_ones_its_pages_and_texts_write() -> None:
    assert {
        SOURCE_ONE_CLICK,
        SOURCE_PAGE,
        SOURCE_STOP,
        SOURCE_START,
        PREFERENCE_CENTRE_SOURCE,
        SOURCE_COMPLAINT,
    } == set(SYSTEM_SOURCES)


async def test_every_api_change_records_the_key_that_made_it(
    stack: PreferencesStack, database_url: str
) -> None:
    engine = create_engine(database_url)
    sessions = create_session_factory(engine)
    crm_key = await ApiKeyStore(sessions).create("crm", ALL_SCOPES)
    [shop_key] = [key for key in await ApiKeyStore(sessions).list_keys() if key.name == "tests"]
    who = customer()
    try:
        async with AftercareClient(stack.settings.grpc_target, api_key=crm_key.token) as crm:
            await stack.client.unsubscribe(who, category=pb.MESSAGE_CATEGORY_MARKETING)
            await crm.update_preferences(
                pb.UpdatePreferencesRequest(
                    customer_id=who,
                    source="crm_sync",
                    consents=[
                        pb.ConsentChange(
                            channel=jpb.CHANNEL_EMAIL,
                            category=pb.MESSAGE_CATEGORY_MARKETING,
                            granted=True,
                        )
                    ],
                )
            )
            await crm.unsubscribe(who, channel=jpb.CHANNEL_SMS, source="support_desk")
            # Concurrent calls with different keys each keep their own.
            await asyncio.gather(
                *(
                    client.unsubscribe(who, category=pb.MESSAGE_CATEGORY_FEEDBACK, source=name)
                    for _ in range(5)
                    for client, name in ((stack.client, "shop"), (crm, "crm"))
                )
            )
        # Not by the API: no key.
        await ConsentLedger(sessions, TEST_MARKS).record(
            who, granted=True, channel="sms", category=None, source="sms_start"
        )
        history = await ConsentLedger(sessions, TEST_MARKS).history(who)
    finally:
        await engine.dispose()

    assert [(event.source, event.api_key_id) for event in history[:3]] == [
        ("api", shop_key.id),
        ("crm_sync", crm_key.info.id),
        ("support_desk", crm_key.info.id),
    ]
    by_source = {"shop": shop_key.id, "crm": crm_key.info.id}
    assert all(event.api_key_id == by_source[event.source] for event in history[3:13])
    assert (history[13].source, history[13].api_key_id) == ("sms_start", None)
    # The answer still shows the source the caller named.
    answer = await stack.client.get_preferences(who, include_history=True)
    assert [record.source for record in answer.history][:3] == ["api", "crm_sync", "support_desk"]
