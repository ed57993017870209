"""Which email resends a chaos run puts down to a worker killed in the residual window,
and how the SMS the ledger records are held against those the provider accepted (where
no resend is excused: delivery reports close the window for texts)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from activities.sms.twilio_sender import status_callback_for
from engine.devstack.twilio_fake import FakeMessage
from tools.chaos.verification import RESIDUAL_WINDOW, Verification, compare_texts, kill_near

ACCEPTED = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_a_kill_just_after_the_provider_accepted_explains_the_resend() -> None:
    kills = [ACCEPTED - timedelta(seconds=5), ACCEPTED + timedelta(milliseconds=300)]
    assert kill_near(ACCEPTED, kills) == timedelta(milliseconds=300)


def test_a_kill_just_before_the_acceptance_explains_it_too() -> None:
    # The sender died with the message on its way; the provider took it afterwards.
    kills = [ACCEPTED - timedelta(milliseconds=120), ACCEPTED + timedelta(seconds=5)]
    assert kill_near(ACCEPTED, kills) == -timedelta(milliseconds=120)


def test_the_nearest_kill_counts() -> None:
    kills = [
        ACCEPTED + timedelta(seconds=1),
        ACCEPTED - timedelta(milliseconds=60),
        ACCEPTED + timedelta(milliseconds=40),
    ]
    assert kill_near(ACCEPTED, kills) == timedelta(milliseconds=40)


def test_no_kill_explains_nothing() -> None:
    assert kill_near(ACCEPTED, []) is None


def test_a_kill_long_before_or_after_the_acceptance_explains_nothing() -> None:
    beyond = RESIDUAL_WINDOW + timedelta(milliseconds=1)
    assert kill_near(ACCEPTED, [ACCEPTED + beyond, ACCEPTED - beyond]) is None
    assert kill_near(ACCEPTED, [ACCEPTED + RESIDUAL_WINDOW]) == RESIDUAL_WINDOW
    assert kill_near(ACCEPTED, [ACCEPTED - RESIDUAL_WINDOW]) == -RESIDUAL_WINDOW


def text(sid: str, key: str | None, accepted_at: datetime) -> FakeMessage:
    callback = None if key is None else status_callback_for("https://care.example/s", key)
    return FakeMessage(
        sid=sid,
        account_sid="AC" + "0" * 32,
        to="+4915112345678",
        from_="+15005550006",
        body="Thanks for your order",
        messaging_service_sid=None,
        status_callback=callback,
        media=[],
        params={},
        num_segments=1,
        date_created=accepted_at,
    )


def test_a_text_sent_again_is_a_problem_even_after_a_kill() -> None:
    # The first copy's delivery report records it long before a retry can look: a
    # second copy means the report did not, whichever copy the ledger holds.
    key = "j-1/order_confirmation/0/sms"
    first = text("SM1", key, ACCEPTED)
    again = text("SM2", key, ACCEPTED + timedelta(seconds=40))
    for recorded_sid in ("SM1", "SM2"):
        result = Verification(journeys=1)

        compare_texts({key: recorded_sid}, [again, first], result)

        assert result.problems == [
            "1 SMS sent twice (no delivery report recorded the first copy before the retry): SM1"
        ]
        assert (result.received, result.duplicates, result.resent_after_kill) == (2, 1, 0)


def test_texts_sent_once_each_pass() -> None:
    result = Verification(journeys=2)

    compare_texts(
        {"j-1/thank_you/0/sms": "SM1", "j-2/thank_you/0/sms": "SM2"},
        [
            text("SM1", "j-1/thank_you/0/sms", ACCEPTED),
            text("SM2", "j-2/thank_you/0/sms", ACCEPTED),
        ],
        result,
    )

    assert result.passed, result.problems
    assert (result.received, result.duplicates, result.missing) == (2, 0, 0)


def test_texts_the_ledger_and_the_provider_disagree_on_are_problems() -> None:
    result = Verification(journeys=2)

    compare_texts(
        {"j-1/thank_you/0/sms": "SM9", "j-2/thank_you/0/sms": "SM3"},
        [
            text("SM1", "j-1/thank_you/0/sms", ACCEPTED),
            text("SM3", "j-2/thank_you/0/sms", ACCEPTED),
        ],
        result,
    )

    assert result.problems == [
        "1 SMS the ledger calls sent the provider never accepted: SM9",
        "1 SMS accepted that the ledger does not record as sent: SM1",
    ]
    assert (result.missing, result.duplicates) == (1, 1)
