"""The preference centre on the served app and a real database (SQLite and
PostgreSQL): it shows consent per channel and category, records exactly what the
customer switched (source ``preference_centre``), tells the journeys, and refuses
forged, altered, expired, other-purpose and cross-site requests without a write."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from engine.platform.database.tables import ConsentRecord, ErasedCustomer
from engine.platform.links.tokens import LinkPurpose, LinkSigner
from tests.engine.customers.pages.support import (
    SAME_ORIGIN,
    Served,
    assert_page,
    served_app,
    signer_at,
)
from tests.support.marks import TEST_MARKS

CUSTOMER = "cus-prefs-1"
JOURNEY = "order-PREFS-1"
CHANNELS = ("email", "sms", "whatsapp")
CATEGORIES = ("relationship", "feedback", "marketing")
ALL_CELLS = {f"{channel}.{category}" for channel in CHANNELS for category in CATEGORIES}


@pytest.fixture
async def served(db_engine: AsyncEngine) -> AsyncIterator[Served]:
    async with served_app(db_engine) as app:
        yield app


def token(served: Served, purpose: str = LinkPurpose.PREFERENCES) -> str:
    return served.signer.sign(purpose, CUSTOMER, JOURNEY)


def checked_cells(page: str) -> set[str]:
    """The names of the checked, switchable boxes on the page."""
    boxes = re.findall(r"<input[^>]*>", page)
    return {
        re.search(r'name="([^"]+)"', box).group(1)  # type: ignore[union-attr]
        for box in boxes
        if 'type="checkbox"' in box and "checked" in box and 'name="' in box
    }


def form(tok: str, cells: set[str]) -> dict[str, str]:
    return {"token": tok, **dict.fromkeys(cells, "on")}


async def save(served: Served, tok: str, cells: set[str], **headers: str) -> httpx.Response:
    return await served.http.post(
        f"/p/{tok}", data=form(tok, cells), headers={**SAME_ORIGIN, **headers}
    )


async def test_the_page_shows_everything_allowed_and_changes_nothing(served: Served) -> None:
    tok = token(served)
    response = await served.http.get(f"/p/{tok}")

    assert_page(response, 200)
    assert checked_cells(response.text) == ALL_CELLS
    # Order updates are shown as always on and cannot be switched.
    assert response.text.count("checked disabled") == len(CHANNELS)
    assert f'name="token" value="{tok}"' in response.text
    assert CUSTOMER not in response.text
    assert JOURNEY not in response.text
    assert await served.count(ConsentRecord) == 0
    assert served.told == []


async def test_the_page_reflects_earlier_decisions_from_anywhere(served: Served) -> None:
    # The one-click unsubscribe (every channel) and an SMS STOP, recorded elsewhere.
    await served.consent.record(
        CUSTOMER, granted=False, channel=None, category="marketing", source="one_click"
    )
    await served.consent.record(
        CUSTOMER, granted=False, channel="sms", category=None, source="sms_stop"
    )
    response = await served.http.get(f"/p/{token(served)}")

    assert_page(response, 200)
    assert checked_cells(response.text) == {
        "email.relationship",
        "email.feedback",
        "whatsapp.relationship",
        "whatsapp.feedback",
    }


async def test_saving_records_only_what_was_switched_and_tells_the_journeys(
    served: Served,
) -> None:
    tok = token(served)
    wanted = ALL_CELLS - {"email.marketing", "sms.feedback"}
    response = await save(served, tok, wanted)

    assert_page(response, 200)
    assert "Saved" in response.text
    assert checked_cells(response.text) == wanted
    history = await served.consent.history(CUSTOMER)
    assert sorted((e.channel, e.category, e.granted, e.source) for e in history) == [
        ("email", "marketing", False, "preference_centre"),
        ("sms", "feedback", False, "preference_centre"),
    ]
    assert not await served.consent.allows(CUSTOMER, "email", "marketing")
    assert not await served.consent.allows(CUSTOMER, "sms", "feedback")
    assert await served.consent.allows(CUSTOMER, "sms", "marketing")
    assert await served.consent.allows(CUSTOMER, "email", "transactional")
    assert served.told == [CUSTOMER]
    # The page shows the stored state from now on.
    shown = await served.http.get(f"/p/{tok}")
    assert checked_cells(shown.text) == wanted

    # The same form again changes nothing and tells nobody.
    again = await save(served, tok, wanted)
    assert_page(again, 200)
    assert "Nothing changed" in again.text
    assert await served.count(ConsentRecord) == 2
    assert served.told == [CUSTOMER]

    # Switching back on is recorded as a grant, newest wins.
    back = await save(served, tok, ALL_CELLS)
    assert_page(back, 200)
    assert await served.consent.allows(CUSTOMER, "email", "marketing")
    assert await served.consent.allows(CUSTOMER, "sms", "feedback")
    assert await served.count(ConsentRecord) == 4
    assert served.told == [CUSTOMER, CUSTOMER]


async def test_a_post_without_browser_headers_still_needs_the_token_in_the_form(
    served: Served,
) -> None:
    tok = token(served)
    # curl and the like send no Origin: the token in the form is what counts.
    ok = await served.http.post(f"/p/{tok}", data=form(tok, ALL_CELLS - {"sms.marketing"}))
    assert_page(ok, 200)
    assert not await served.consent.allows(CUSTOMER, "sms", "marketing")

    missing = await served.http.post(f"/p/{tok}", data=dict.fromkeys(ALL_CELLS, "on"))
    other = token(served, LinkPurpose.PREFERENCES)[:-1] + "x"
    mismatched = await served.http.post(f"/p/{tok}", data=form(other, set()), headers=SAME_ORIGIN)
    for response in (missing, mismatched):
        assert_page(response, 400)
    assert await served.count(ConsentRecord) == 1


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site", "Origin": "https://care.shop.example"},
    ],
)
async def test_a_post_from_another_site_is_refused(served: Served, headers: dict[str, str]) -> None:
    tok = token(served)
    response = await served.http.post(f"/p/{tok}", data=form(tok, set()), headers=headers)

    assert_page(response, 403)
    assert "another website" in response.text
    assert await served.count(ConsentRecord) == 0
    assert served.told == []


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("email.transactional", "on", "email.transactional"),
        ("sms.marketing", "yes", "sms.marketing"),
        ("email.marketing\u202e", "on", "email.marketing"),
    ],
)
async def test_a_bad_form_names_the_field_and_records_nothing(
    served: Served, field: str, value: str, named: str
) -> None:
    tok = token(served)
    data = {**form(tok, {"email.feedback"}), field: value}
    response = await served.http.post(f"/p/{tok}", data=data, headers=SAME_ORIGIN)

    assert_page(response, 400)
    assert named in response.text
    assert "Nothing was changed" in response.text
    assert await served.count(ConsentRecord) == 0
    assert served.told == []


async def test_forged_altered_and_other_purpose_tokens_change_nothing(served: Served) -> None:
    good = token(served)
    forged = served.signer.sign(LinkPurpose.PREFERENCES, CUSTOMER, JOURNEY)
    forged = "x" + forged[1:] if forged[0] != "x" else "y" + forged[1:]
    payload, _, rest = good.partition(".")
    altered = payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB") + "." + rest
    bad_tokens = [
        forged,
        altered,
        good[:-3],
        "not-a-token",
        LinkSigner("another-secret").sign(LinkPurpose.PREFERENCES, CUSTOMER, JOURNEY),
        token(served, LinkPurpose.UNSUBSCRIBE),
        token(served, LinkPurpose.FEEDBACK),
        "x" * 2500,
    ]
    for bad in bad_tokens:
        shown = await served.http.get(f"/p/{bad}")
        assert_page(shown, 400)
        assert "not valid" in shown.text
        posted = await served.http.post(f"/p/{bad}", data=form(bad, set()), headers=SAME_ORIGIN)
        assert_page(posted, 400)
    assert await served.count(ConsentRecord) == 0
    assert served.told == []


async def test_an_expired_link_gets_410_and_changes_nothing(served: Served) -> None:
    old = signer_at(datetime.now(UTC) - timedelta(days=61)).sign(
        LinkPurpose.PREFERENCES, CUSTOMER, JOURNEY
    )
    shown = await served.http.get(f"/p/{old}")
    assert_page(shown, 410)
    assert "expired" in shown.text
    posted = await served.http.post(f"/p/{old}", data=form(old, set()), headers=SAME_ORIGIN)
    assert_page(posted, 410)
    assert await served.count(ConsentRecord) == 0

    # Just inside the window it still works.
    recent = signer_at(datetime.now(UTC) - timedelta(days=59)).sign(
        LinkPurpose.PREFERENCES, CUSTOMER, JOURNEY
    )
    assert_page(await served.http.get(f"/p/{recent}"), 200)


async def test_a_failing_journey_notification_does_not_lose_the_change(
    db_engine: AsyncEngine,
) -> None:
    async with served_app(db_engine, failing_callback=True) as served:
        tok = token(served)
        response = await save(served, tok, ALL_CELLS - {"whatsapp.relationship"})

        assert_page(response, 200)
        assert "Saved" in response.text
        assert not await served.consent.allows(CUSTOMER, "whatsapp", "relationship")
        assert served.told == [CUSTOMER]


async def test_customer_text_in_the_page_is_escaped(served: Served) -> None:
    # The only request data a page prints back is the token (and a bad field's name).
    tok = token(served)
    response = await served.http.post(
        f"/p/{tok}", data={**form(tok, set()), "<script>x</script>": "on"}, headers=SAME_ORIGIN
    )
    assert_page(response, 400)
    assert "<script>x</script>" not in response.text
    assert "&lt;script&gt;" in response.text


async def test_an_erased_customer_link_changes_nothing(served: Served) -> None:
    async with served.sessions() as session, session.begin():
        session.add(ErasedCustomer(customer_hash=TEST_MARKS.digest(CUSTOMER)))
    tok = token(served)

    response = await save(served, tok, ALL_CELLS - {"email.marketing"})

    assert_page(response, 410)
    assert await served.count(ConsentRecord) == 0
    assert served.told == []
